"""Every signature and every verification becomes an attestation and an audit entry.

The predicates are ours (``https://securenb.dev/attestation/{signature,verification}/v1``)
and are checked against their JSON schemas (``securenb/schemas/``) before anything
is signed, like every predicate type we own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from securenb.core.attest import Subject, make_statement, validate_predicate
from securenb.core.attest.statement import PREDICATE_BASE
from securenb.core.workspace import Workspace
from securenb.signing.result import SignResult, Verification

SIGNATURE_PREDICATE = f"{PREDICATE_BASE}/signature/v1"
VERIFICATION_PREDICATE = f"{PREDICATE_BASE}/verification/v1"
_FORMATS = {"model": "model-signing/v1.0 (Sigstore bundle v0.3)",
            "notebook": "securenb notebook DSSE (metadata.securenb.signature)",
            "blob": "cosign sign-blob"}


def record_signature(ws: Workspace, result: SignResult, subjects: list[Subject],
                     signature_sha256: str, requester: dict[str, str] | None = None) -> str:
    """Attest and audit a signature; return the attestation's envelope digest."""
    predicate: dict[str, Any] = {
        "kind": result.kind,
        "format": _FORMATS[result.kind],
        "signature": {"path": ws.relpath(_path(result.signature)), "sha256": signature_sha256},
        "signer": result.signer.to_json(),
        "hashAlgorithm": result.algorithm,
        "files": result.files,
        "via": result.via,
    }
    if requester:
        predicate["requester"] = requester
    validate_predicate(SIGNATURE_PREDICATE, predicate)
    record = ws.attest(make_statement(subjects, SIGNATURE_PREDICATE, predicate))
    ws.audit(f"{result.kind}.sign", f"sha256:{subjects[0].sha256}", {
        "path": ws.relpath(_path(result.path)), "signature": predicate["signature"]["path"],
        "signer": result.signer.describe(), "via": result.via,
        "attestation": f"sha256:{record.envelope}", **(requester or {}),
    })
    return record.envelope


def record_verification(ws: Workspace, result: Verification, subjects: list[Subject]) -> str:
    """Attest and audit a verification, failed or not; return the envelope digest."""
    predicate: dict[str, Any] = {
        "kind": result.kind,
        "verified": result.verified,
        "signature": result.signature,
        "signer": result.signer.to_json() if result.signer else None,
        "signedAt": result.signed_at,
        "trust": result.trust,
        "problems": list(result.problems),
        "policy": ws.policy.digest(),
    }
    validate_predicate(VERIFICATION_PREDICATE, predicate)
    record = ws.attest(make_statement(subjects, VERIFICATION_PREDICATE, predicate))
    ws.audit(f"{result.kind}.verify", f"sha256:{subjects[0].sha256}", {
        "path": ws.relpath(_path(result.path)), "verified": result.verified,
        "signer": result.signer.describe() if result.signer else None,
        "problems": len(result.problems), "attestation": f"sha256:{record.envelope}",
    })
    return record.envelope


def _path(text: str) -> Path:
    """The file of a location such as ``nb.ipynb#metadata.securenb.signature``."""
    return Path(text.split("#", 1)[0])
