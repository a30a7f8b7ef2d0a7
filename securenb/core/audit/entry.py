"""Audit entries: ``{time, actor, action, subject, details}`` as RFC 8785 JSON.

The leaf of the Merkle tree is the canonical JSON of the entry, so an entry
re-serialised by any JCS implementation hashes the same, and a line of
``entries.jsonl`` is exactly the bytes that were signed (JCS escapes every
control character, so an entry never holds a raw newline).
"""

from __future__ import annotations

import getpass
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from securenb.core.canonical import canonical_json
from securenb.errors import AuditError

FIELDS = ("action", "actor", "details", "subject", "time")
_RFC3339_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z")
SECRET_KEYS = frozenset(
    {"password", "passphrase", "secret", "token", "private_key", "api_key", "access_key"}
)
"""Detail keys refused outright: details may name a secret, never hold one."""


def utc_now() -> str:
    """Now as RFC 3339 UTC with microseconds, e.g. ``2025-01-31T12:00:00.123456Z``."""
    return format_time(datetime.now(timezone.utc))


def format_time(moment: datetime) -> str:
    """An aware datetime as RFC 3339 UTC (naive ones are refused: their zone is a guess)."""
    if moment.tzinfo is None:
        raise AuditError(f"audit time {moment.isoformat()} has no time zone")
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _check_details(value: Any, path: str) -> None:
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise AuditError(f"audit details{path}: key {key!r} is not a string")
            if key.lower() in SECRET_KEYS:
                raise AuditError(
                    f"audit details{path}.{key}: looks like a secret; "
                    "record the secret's name, never its value"
                )
            _check_details(item, f"{path}.{key}")
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_details(item, f"{path}[{i}]")


@dataclass(frozen=True)
class AuditEntry:
    """One audit event; build with :meth:`new`, read back with :meth:`from_json`."""

    time: str
    actor: str
    action: str
    subject: str
    details: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("actor", "action", "subject"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise AuditError(f"audit entry {name} must be a non-empty string, not {value!r}")
        if not isinstance(self.time, str) or not _RFC3339_UTC.fullmatch(self.time):
            raise AuditError(f"audit entry time {self.time!r} is not RFC 3339 UTC (…Z)")
        if not isinstance(self.details, Mapping):
            raise AuditError(f"audit entry details must be an object, not {self.details!r}")
        _check_details(self.details, "")

    @classmethod
    def new(
        cls,
        action: str,
        subject: str,
        *,
        details: Mapping[str, Any] | None = None,
        actor: str | None = None,
        time: datetime | None = None,
    ) -> AuditEntry:
        """An entry stamped now (UTC) by the current OS user unless told otherwise."""
        return cls(
            time=utc_now() if time is None else format_time(time),
            actor=actor if actor is not None else getpass.getuser(),
            action=action,
            subject=subject,
            details=dict(details or {}),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "time": self.time,
            "actor": self.actor,
            "action": self.action,
            "subject": self.subject,
            "details": dict(self.details),
        }

    def canonical(self) -> bytes:
        """The leaf bytes: RFC 8785 JSON of the entry."""
        try:
            return canonical_json(self.to_json())
        except ValueError as exc:  # rfc8785's errors for NaN, big ints, bytes, ...
            raise AuditError(f"audit entry {self.action}: details are not JSON ({exc})") from exc

    @classmethod
    def from_json(cls, obj: Any, source: str = "audit entry") -> AuditEntry:
        if not isinstance(obj, dict) or sorted(obj) != list(FIELDS):
            raise AuditError(f"{source}: an audit entry is an object with exactly {FIELDS}")
        try:
            return cls(**obj)
        except AuditError as exc:
            raise AuditError(f"{source}: {exc}") from exc

    @classmethod
    def from_line(cls, line: bytes, source: str = "audit entry") -> AuditEntry:
        """Parse one line of ``entries.jsonl``."""
        try:
            obj = json.loads(line)
        except ValueError as exc:
            raise AuditError(f"{source}: not JSON ({exc})") from exc
        return cls.from_json(obj, source)
