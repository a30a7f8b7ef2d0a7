"""Deny-by-default scanner for serialized models: ``scan_path`` and ``safe_load``.

Nothing from a scanned file is imported or executed; formats are detected by content; a
file is SAFE only when it was analysed completely and nothing outside the allowlist was
found. UNKNOWN means "not fully analysed" and must never be treated as safe.

The names below are imported on first use (PEP 562), so that ``securenb scan`` can start
CPython's unpickler helper (:mod:`securenb.scan.unpickle_probe`) before it pays for
importing the format scanners.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from securenb.core.lazy import exports

if TYPE_CHECKING:
    from securenb.scan.allowlist import Allowlist
    from securenb.scan.engine import scan_path
    from securenb.scan.loading import ScanRefusedError, safe_load
    from securenb.scan.options import ScanOptions
    from securenb.scan.report import FileReport, Finding, ScanReport, Severity, Verdict
    from securenb.scan.rules import RULES, Rule
    from securenb.scan.sarif import to_sarif

_HOMES = {
    "Allowlist": "allowlist",
    "scan_path": "engine",
    "ScanOptions": "options",
    "FileReport": "report",
    "Finding": "report",
    "ScanReport": "report",
    "Severity": "report",
    "Verdict": "report",
    "RULES": "rules",
    "Rule": "rules",
    "ScanRefusedError": "loading",
    "safe_load": "loading",
    "to_sarif": "sarif",
}

__all__ = [
    "RULES",
    "Allowlist",
    "FileReport",
    "Finding",
    "Rule",
    "ScanOptions",
    "ScanRefusedError",
    "ScanReport",
    "Severity",
    "Verdict",
    "safe_load",
    "scan_path",
    "to_sarif",
]


__getattr__ = exports(__name__, _HOMES)
