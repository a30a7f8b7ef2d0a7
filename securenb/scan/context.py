"""Where a scan stands: the file on disk, the archive member inside it, and what it may spend.

Format scanners receive a :class:`Ctx` and report findings through it; the context fills
in the file, the member chain and the rule's severity and verdict, and caps repetitive
findings without ever losing the worst verdict.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import BinaryIO

from securenb.scan.allowlist import Allowlist
from securenb.scan.options import ScanOptions
from securenb.scan.report import Finding
from securenb.scan.rules import RULES
from securenb.scan.source import LimitExceeded, Source

_PER_RULE = 25


@dataclass
class FileState:
    """Everything shared while one top-level file (and what is nested in it) is scanned."""

    path: str
    options: ScanOptions
    allowlist: Allowlist
    size: int = 0
    findings: list[Finding] = field(default_factory=list)
    globals: set[str] = field(default_factory=set)
    formats: list[str] = field(default_factory=list)
    inflated: int = 0
    temp_files: list[BinaryIO] = field(default_factory=list)
    referenced_data: set[str] = field(default_factory=set)
    """Files other files point at as raw data (ONNX external data), by absolute path."""
    _per_rule: Counter[str] = field(default_factory=Counter)
    _dropped: dict[str, Finding] = field(default_factory=dict)
    _dropped_n: Counter[str] = field(default_factory=Counter)

    def add(self, finding: Finding) -> None:
        self._per_rule[finding.rule] += 1
        if self._per_rule[finding.rule] <= min(_PER_RULE, self.options.max_findings):
            self.findings.append(finding)
        else:
            self._dropped.setdefault(finding.rule, finding)
            self._dropped_n[finding.rule] += 1

    def finish(self) -> list[Finding]:
        """The findings, with one summary per rule whose repeats were dropped."""
        for rule, first in self._dropped.items():
            n = self._dropped_n[rule]
            self.findings.append(
                Finding(
                    rule=rule,
                    severity=first.severity,
                    verdict=first.verdict,
                    message=f"{n} more finding(s) of this rule not listed",
                    path=first.path,
                    member=first.member,
                )
            )
        for fh in self.temp_files:
            fh.close()
        self.temp_files.clear()
        return self.findings


class Ctx:
    """A position in the nesting: which member of which archive is being scanned."""

    __slots__ = ("depth", "file", "member")

    def __init__(self, file: FileState, member: str | None = None, depth: int = 0) -> None:
        self.file = file
        self.member = member
        self.depth = depth

    @property
    def options(self) -> ScanOptions:
        return self.file.options

    @property
    def allowlist(self) -> Allowlist:
        return self.file.allowlist

    def child(self, name: str) -> Ctx:
        member = name if self.member is None else f"{self.member}!{name}"
        return Ctx(self.file, member, self.depth + 1)

    def report(
        self,
        rule: str,
        message: str,
        *,
        offset: int | None = None,
        construct: str | None = None,
    ) -> None:
        r = RULES[rule]
        self.file.add(
            Finding(
                rule=rule,
                severity=r.severity,
                verdict=r.verdict,
                message=message,
                path=self.file.path,
                member=self.member,
                offset=offset,
                construct=construct,
            )
        )

    def inflate_budget(self, compressed: int) -> int:
        """Bytes a wrapper of ``compressed`` bytes may still inflate to.

        Three caps: the total per file, the ratio to this wrapper's compressed size, and
        the ratio to the whole file's size, so nesting (42.zip) gains nothing. Each ratio
        cap allows at least 64 MiB.
        """
        ratio = self.options.max_compression_ratio
        floor = 64 << 20
        return max(
            0,
            min(
                self.options.max_decompressed_bytes - self.file.inflated,
                max(compressed * ratio, floor),
                max(self.file.size * ratio, floor) - self.file.inflated,
            ),
        )

    def spend(self, inflated: int) -> None:
        self.file.inflated += inflated
        if self.file.inflated > self.options.max_decompressed_bytes:
            raise LimitExceeded("total inflated size limit reached")

    def scan(self, src: Source, name: str) -> str:
        """Scan nested content (an archive member, inflated data, bytes in a pickle)."""
        from securenb.scan.dispatch import scan_source

        return scan_source(src, self.child(name))
