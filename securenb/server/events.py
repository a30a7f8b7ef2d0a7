"""Live events for the sidebar: jupyter_events schemas (``events/*.yaml``) on the server's bus.

Whoever writes the workspace (this server, a kernel, the CLI, another host
sharing the folder) appends to its audit log, so the relay follows the log
(and the runs table, for runs that have only started) and turns each new
entry into one event: one source, no writer has to notify, nothing is missed
or doubled. Events carry digests, paths, the actor and a one-line outcome,
never details that could hold a secret.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from jupyter_events import EventLogger
from tornado.ioloop import PeriodicCallback

from securenb.core.attest.statement import (
    DEPLOYMENT_PREDICATE,
    FAIRNESS_PREDICATE,
    GATE_PREDICATE,
    SCAN_PREDICATE,
)
from securenb.core.audit.entry import AuditEntry
from securenb.core.workspace import Workspace
from securenb.errors import SecurenbError
from securenb.server.signer import SignerService

SCHEMA_DIR = Path(__file__).with_name("events")
SCHEMA_BASE = "https://securenb.dev/events/"
NAMES = ("run-started", "run-finished", "artifact-recorded", "signed", "verified", "scanned",
         "fairness-checked", "gate-decided", "promoted", "rolled-back")
_BY_PREDICATE = {SCAN_PREDICATE: "scanned", FAIRNESS_PREDICATE: "fairness-checked",
                 GATE_PREDICATE: "gate-decided", DEPLOYMENT_PREDICATE: "promoted"}

Event = tuple[str, dict[str, Any]]


def schema_id(name: str) -> str:
    return f"{SCHEMA_BASE}{name}/v1"


def register(logger: EventLogger) -> None:
    for name in NAMES:
        logger.register_event_schema(SCHEMA_DIR / f"{name}.yaml")


def event_of(entry: AuditEntry) -> Event | None:
    """The event an audit entry announces, if any."""
    details = dict(entry.details)
    subject = entry.subject
    digest = subject if subject.startswith("sha256:") else None
    path = details.get("path") if isinstance(details.get("path"), str) else None
    who = details.get("user") or (f"kernel {details['kernel']}" if details.get("kernel") else None)
    data: dict[str, Any] = {"digest": digest, "path": path, "notebook": None,
                            "actor": str(who or entry.actor)}
    action = entry.action
    if action == "artifact.record":
        return "artifact-recorded", data
    if action in ("model.sign", "notebook.sign"):
        return "signed", data
    if action in ("model.verify", "notebook.verify", "blob.verify"):
        # the subject is the digest the file has now: the path names the artifact
        return "verified", {**data, "detail": "verified" if details.get("verified") is True
                            else "failed"}
    if action == "attestation.sign":
        name = _BY_PREDICATE.get(str(details.get("predicateType")))
        return (name, data) if name else None
    if action == "secure_train.run":
        status = details.get("status")
        return "run-finished", {**data, "run_id": subject.removeprefix("run:"),
                                "detail": str(status) if status is not None else None}
    if "rollback" in action or "rolled-back" in action:
        return "rolled-back", data
    return None


class EventRelay:
    """Follows the workspace and emits each new record as an event."""

    def __init__(self, signer: SignerService, logger: EventLogger, log: logging.Logger,
                 interval_ms: int = 500) -> None:
        self.signer, self.logger, self.log = signer, logger, log
        self._size: int | None = None
        self._runs: set[str] | None = None
        self._busy = False
        self._timer = PeriodicCallback(self.tick, interval_ms)

    async def start(self) -> None:
        """Note where the workspace stands now, then follow it: whatever is recorded after
        the server started is announced, however late the first tick comes."""
        try:
            await self.signer.call(self._collect)
        except SecurenbError as exc:
            self.log.debug("securenb: no live events: %s", exc)  # the signer warned
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()

    async def tick(self) -> None:
        if self._busy:
            return
        self._busy = True
        try:
            events = await self.signer.call(self._collect)
        except SecurenbError as exc:
            self.log.debug("securenb: events paused: %s", exc)
            events = []
        finally:
            self._busy = False
        for name, data in events:
            self.logger.emit(schema_id=schema_id(name), data=data)

    def _collect(self, ws: Workspace) -> list[Event]:
        """On the worker thread: what was appended since the last look."""
        size = ws.audit_log.size
        runs = {r.id: r for r in ws.store.list_runs(200)}
        if self._size is None or self._runs is None:  # the first look: only what comes next
            self._size, self._runs = size, set(runs)
            return []
        events: list[Event] = []
        for run_id in runs.keys() - self._runs:
            events.append(("run-started", {"digest": None, "path": None, "notebook": None,
                                           "actor": "workspace", "run_id": run_id,
                                           "detail": runs[run_id].kind}))
        self._runs |= set(runs)
        if size > self._size:
            for record in ws.audit_log.read(self._size, size):
                event = event_of(record.entry)
                if event is not None:
                    events.append(event)
            self._size = size
        return events
