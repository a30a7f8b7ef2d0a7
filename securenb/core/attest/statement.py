"""in-toto Statement v1: what was attested about which artifacts.

Subjects are named by digest; the predicate carries the claim. We build plain
dicts (typed JSON) rather than protobuf ``Struct``s, which turn integers into
floats (see shared notes on SLSA).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from securenb.errors import AttestationError

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_BASE = "https://securenb.dev/attestation"
SCAN_PREDICATE = f"{PREDICATE_BASE}/scan/v1"
FAIRNESS_PREDICATE = f"{PREDICATE_BASE}/fairness/v1"
GATE_PREDICATE = f"{PREDICATE_BASE}/gate/v1"
DEPLOYMENT_PREDICATE = f"{PREDICATE_BASE}/deployment/v1"
DATASET_PREDICATE = f"{PREDICATE_BASE}/dataset/v1"
SLSA_PROVENANCE_PREDICATE = "https://slsa.dev/provenance/v1"


@dataclass(frozen=True)
class Subject:
    """An artifact named in a statement: a name and its sha256 digest (hex)."""

    name: str
    sha256: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "digest": {"sha256": self.sha256}}


def make_statement(
    subjects: list[Subject], predicate_type: str, predicate: dict[str, Any]
) -> dict[str, Any]:
    """Return an in-toto Statement v1 as a JSON-ready dict."""
    if not subjects:
        raise AttestationError("a statement needs at least one subject")
    return {
        "_type": STATEMENT_TYPE,
        "subject": [s.to_json() for s in subjects],
        "predicateType": predicate_type,
        "predicate": predicate,
    }


def subjects_of(statement: dict[str, Any]) -> list[Subject]:
    """Read back the sha256 subjects of a statement, rejecting malformed ones."""
    if statement.get("_type") != STATEMENT_TYPE:
        raise AttestationError(f"not an in-toto Statement v1 (_type={statement.get('_type')!r})")
    raw = statement.get("subject")
    if not isinstance(raw, list) or not raw:
        raise AttestationError("statement has no subjects")
    out = []
    for i, item in enumerate(raw):
        digest = item.get("digest", {}).get("sha256") if isinstance(item, dict) else None
        if not isinstance(digest, str) or len(digest) != 64:
            raise AttestationError(f"statement subject {i} has no sha256 digest")
        out.append(Subject(str(item.get("name", "")), digest))
    return out
