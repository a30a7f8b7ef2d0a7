"""A robustness evaluation becomes a signed attestation on the model's digest, and an audit
entry."""

from __future__ import annotations

from pathlib import Path

from securenb.core.attest import Subject, make_statement
from securenb.core.attest.statement import PREDICATE_BASE
from securenb.core.workspace import Workspace
from securenb.errors import SecurenbError
from securenb.robustness.run import RobustnessResult

ROBUSTNESS_PREDICATE = f"{PREDICATE_BASE}/robustness/v1"


def record(ws: Workspace, result: RobustnessResult, model: Path, data: Path) -> str:
    """Attest ``result`` about ``model``; the envelope digest. The model and the data are
    named by the digests of the bytes evaluated (``result``), never hashed again here."""
    if not (result.model_sha256 and result.data_sha256):
        raise SecurenbError("a robustness result without the digests of what it evaluated")
    ws.signer()
    artifact = ws.record_artifact(model, digest=result.model_sha256)
    predicate = result.to_predicate(f"sha256:{artifact.digest}",
                                    {"path": ws.relpath(data), "sha256": result.data_sha256})
    predicate["floor"] = ws.policy.gate.min_robust_accuracy
    envelope = ws.attest(make_statement([Subject(artifact.path, artifact.digest)],
                                        ROBUSTNESS_PREDICATE, predicate)).envelope
    ws.audit("robustness.check", f"sha256:{artifact.digest}", {
        "path": artifact.path, "clean": result.clean_accuracy, "worst": result.worst,
        "attestation": f"sha256:{envelope}"})
    return envelope
