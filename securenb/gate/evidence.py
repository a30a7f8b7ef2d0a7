"""What the workspace holds about one artifact: its attestations, each checked before use.

An attestation counts only if its envelope verifies against the workspace's
record key and its blob matches its digest; one that does not is listed as
rejected (the gate then fails: the store was tampered with). So is one the
append-only audit log says was signed about the artifact but that the index no
longer lists: deleting the newest (failing) scan must not bring back an older
passing one. That cross-check reads the audit log: O(entries).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from securenb.core.store import AttestationRecord
from securenb.core.workspace import Workspace
from securenb.errors import SecurenbError


@dataclass(frozen=True)
class Attested:
    record: AttestationRecord
    statement: dict[str, Any]

    @property
    def predicate(self) -> dict[str, Any]:
        predicate: dict[str, Any] = self.statement["predicate"]
        return predicate


@dataclass
class Evidence:
    """Verified attestations naming the digest, by predicate type, newest first."""

    digest: str
    by_type: dict[str, list[Attested]] = field(default_factory=dict)
    rejected: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        return sum(len(v) for v in self.by_type.values())

    def all(self, predicate_type: str) -> list[Attested]:
        return self.by_type.get(predicate_type, [])

    def latest(self, predicate_type: str) -> Attested | None:
        found = self.all(predicate_type)
        return found[0] if found else None


def gather(ws: Workspace, digest: str, skip: tuple[str, ...] = ()) -> Evidence:
    """Load and verify every attestation naming ``digest`` (except types in ``skip``)."""
    evidence = Evidence(digest)
    records = ws.store.attestations_for(digest)
    _missing_from_index(ws, digest, {r.envelope for r in records}, evidence)
    wanted = [r for r in records if r.predicate_type not in skip]
    # signature checks release the GIL: a few threads divide the time on several cores
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        loaded = list(pool.map(lambda r: _load(ws, r), wanted))
    for record, (statement, problem) in zip(wanted, loaded, strict=True):
        if problem is None and statement is not None and not _names(statement, record, digest):
            problem = "index does not match the signed statement"
        if problem is not None or statement is None:
            evidence.rejected.append(f"sha256:{record.envelope[:16]}... ({problem})")
            continue
        evidence.by_type.setdefault(record.predicate_type, []).append(Attested(record, statement))
    return evidence


def _load(ws: Workspace, record: AttestationRecord
          ) -> tuple[dict[str, Any] | None, str | None]:
    try:
        return ws.load_attestation(record.envelope)[1], None
    except SecurenbError as exc:
        return None, str(exc)


def _names(statement: dict[str, Any], record: AttestationRecord, digest: str) -> bool:
    return statement.get("predicateType") == record.predicate_type and any(
        s.get("digest", {}).get("sha256") == digest for s in statement["subject"])

def _missing_from_index(ws: Workspace, digest: str, indexed: set[str], evidence: Evidence
                        ) -> None:
    subject = f"sha256:{digest}"
    for item in ws.audit_log.read():
        entry = item.entry
        if entry.action != "attestation.sign" or entry.subject != subject:
            continue
        envelope = str(entry.details.get("envelope", "")).removeprefix("sha256:")
        if envelope and envelope not in indexed:
            evidence.rejected.append(
                f"sha256:{envelope[:16]}... (audit entry {item.index} records it, the index "
                "does not list it: deleted?)")
