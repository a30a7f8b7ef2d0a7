"""A bias check becomes a signed fairness attestation on the model's digest, and an audit entry.

The model is only hashed, never loaded: the predictions were computed elsewhere
(a model from outside may run code when loaded).
"""

from __future__ import annotations

from pathlib import Path

from securenb.core.attest import FAIRNESS_PREDICATE, Subject, make_statement
from securenb.core.workspace import Workspace
from securenb.errors import SecurenbError
from securenb.fairness.report import FairnessReport


def record(ws: Workspace, report: FairnessReport, model: Path,
           data: dict[str, str] | None = None) -> str:
    """Attest ``report`` about ``model`` (a file); return the envelope digest."""
    model = Path(model)
    if not model.is_file():
        raise SecurenbError(f"{model}: not a model file (the bias check is recorded on its digest)")
    ws.signer()  # unlock first: a locked key must not leave half a record behind
    artifact = ws.record_artifact(model)
    predicate = report.to_predicate(model=f"sha256:{artifact.digest}")
    if data:
        predicate["data"] = dict(data)
    statement = make_statement([Subject(artifact.path, artifact.digest)], FAIRNESS_PREDICATE,
                               predicate)
    envelope = ws.attest(statement).envelope
    ws.audit("fairness.check", f"sha256:{artifact.digest}", {
        "path": artifact.path, "status": report.status, "passed": report.passed,
        "rows": report.rows, "sensitiveFeatures": list(report.features),
        "attestation": f"sha256:{envelope}",
    })
    return envelope
