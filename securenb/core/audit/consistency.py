"""Does the audit log account for everything the store holds?

The store (SQLite index and blobs) and the audit log are written one after the
other, so a process that dies in between leaves a record nobody audited: a run
still "running", an attestation or a signature with no entry. ``audit verify``
proves the log was not changed; this check proves it is complete with respect
to the store, and names each record it does not account for.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from securenb.core.audit.log import AuditRecord
from securenb.core.store import Store

RUN_ACTIONS = frozenset({"secure_train.run", "run.finish"})
"""Actions that close a run (``subject`` ``run:<id>``)."""


@dataclass
class _Audited:
    """What the log's entries account for, as sets of keys."""

    runs: set[str] = field(default_factory=set)
    envelopes: set[str] = field(default_factory=set)
    referenced: set[str] = field(default_factory=set)
    artifacts: set[tuple[str, str]] = field(default_factory=set)

    def add(self, action: str, subject: str, details: dict[str, Any]) -> None:
        if action in RUN_ACTIONS and subject.startswith("run:"):
            self.runs.add(subject.removeprefix("run:"))
        elif action == "attestation.sign" and isinstance(details.get("envelope"), str):
            self.envelopes.add(details["envelope"].removeprefix("sha256:"))
        elif action == "artifact.record" and isinstance(details.get("path"), str):
            self.artifacts.add((subject.removeprefix("sha256:"), details["path"]))
        for key in ("attestation", "provenance"):
            if isinstance(details.get(key), str):
                self.referenced.add(details[key].removeprefix("sha256:"))


def unaccounted(records: Iterable[AuditRecord], store: Store) -> list[str]:
    """Every run, attestation, signature/verification and artifact of ``store`` that
    no audit entry accounts for (empty: the log is complete)."""
    audited = _Audited()
    for record in records:
        entry = record.entry
        audited.add(entry.action, entry.subject, dict(entry.details))
    problems: list[str] = []
    for run in store.list_runs(limit=-1):
        if run.id in audited.runs:
            continue
        state = ("never finished (its record was lost)" if run.status == "running"
                 else f"finished {run.status}")
        problems.append(f"run {run.id} ({run.kind}, started {run.started}) {state} and has "
                        "no audit entry")
    for att in store.list_attestations(limit=-1):
        what = f"attestation sha256:{att.envelope} ({att.predicate_type}, {att.created})"
        if att.envelope not in audited.envelopes:
            problems.append(f"{what} has no attestation.sign audit entry")
        elif _needs_reference(att.predicate_type) and att.envelope not in audited.referenced:
            kind = att.predicate_type.rstrip("/").split("/")[-2]
            problems.append(f"{what}: the {kind} it attests has no audit entry")
    for art in store.list_artifacts(limit=-1):
        if (art.digest, art.path) not in audited.artifacts:
            problems.append(f"artifact {art.path} (sha256:{art.digest}) has no artifact.record "
                            "audit entry")
    return problems


def _needs_reference(predicate_type: str) -> bool:
    """Signatures, verifications and run provenance are audited by a second entry that
    names their attestation (``<kind>.sign``/``.verify`` or ``secure_train.run``)."""
    parts = predicate_type.rstrip("/").split("/")
    return predicate_type.startswith("https://securenb.dev/attestation/") and len(parts) >= 2 \
        and parts[-2] in ("signature", "verification")
