"""Results of a scan: verdicts, findings, per-file and overall reports.

Services never print (see docs/architecture.md): these dataclasses are what the CLI, the
magic and the attestation render. UNKNOWN ranks between SAFE and UNSAFE so that "worst
verdict wins" never turns an incomplete scan into a clean one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class Verdict(str, Enum):
    """SAFE: fully analysed, nothing found. UNKNOWN: not fully analysed. UNSAFE: found."""

    SAFE = "SAFE"
    UNKNOWN = "UNKNOWN"
    UNSAFE = "UNSAFE"

    @property
    def rank(self) -> int:
        return _VERDICT_RANK[self]

    def worst(self, other: Verdict) -> Verdict:
        return self if self.rank >= other.rank else other


_VERDICT_RANK = {Verdict.SAFE: 0, Verdict.UNKNOWN: 1, Verdict.UNSAFE: 2}


class Severity(str, Enum):
    """How bad a finding is, in SARIF's terms (critical/high map to ``error``)."""

    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


@dataclass(frozen=True)
class Finding:
    """One thing the scanner saw: where (file, archive member, byte offset) and what."""

    rule: str
    severity: Severity
    verdict: Verdict
    message: str
    path: str
    member: str | None = None
    offset: int | None = None
    construct: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "severity": self.severity.value,
            "verdict": self.verdict.value,
            "message": self.message,
            "path": self.path,
            "member": self.member,
            "offset": self.offset,
            "construct": self.construct,
        }


@dataclass
class FileReport:
    """The verdict for one file on disk, with the formats found in it and every finding."""

    path: str
    format: str
    size: int
    findings: list[Finding] = field(default_factory=list)
    globals: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def verdict(self) -> Verdict:
        verdict = Verdict.SAFE
        for f in self.findings:
            verdict = verdict.worst(f.verdict)
        return verdict

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "format": self.format,
            "size": self.size,
            "verdict": self.verdict.value,
            "findings": [f.to_dict() for f in self.findings],
            "globals": self.globals,
            "seconds": round(self.seconds, 6),
        }


@dataclass
class ScanReport:
    """The result of scanning one path (a file or a folder, file by file)."""

    target: str
    files: list[FileReport] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    """Findings about the target itself rather than one file (e.g. an empty folder)."""
    seconds: float = 0.0
    scanner_version: str = ""
    allowlist_extra: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> Verdict:
        verdict = Verdict.SAFE
        for f in self.findings:
            verdict = verdict.worst(f.verdict)
        for fr in self.files:
            verdict = verdict.worst(fr.verdict)
        return verdict

    def all_findings(self) -> list[Finding]:
        return [*self.findings, *(f for fr in self.files for f in fr.findings)]

    def counts(self) -> dict[str, int]:
        out = {v.value: 0 for v in Verdict}
        for fr in self.files:
            out[fr.verdict.value] += 1
        return out

    def to_dict(self) -> dict[str, Any]:
        """The scan predicate (schema: securenb/schemas/scan.v1.json)."""
        return {
            "scanner": {"name": "securenb-scan", "version": self.scanner_version},
            "target": self.target,
            "verdict": self.verdict.value,
            "summary": {"files": len(self.files), **self.counts()},
            "allowlistExtra": list(self.allowlist_extra),
            "findings": [f.to_dict() for f in self.findings],
            "files": [fr.to_dict() for fr in self.files],
            "seconds": round(self.seconds, 6),
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)
