"""Deny-by-default scanner for serialized models: ``scan_path`` and ``safe_load``.

Nothing from a scanned file is imported or executed; formats are detected by content; a
file is SAFE only when it was analysed completely and nothing outside the allowlist was
found. UNKNOWN means "not fully analysed" and must never be treated as safe.
"""

from securenb.scan.allowlist import Allowlist
from securenb.scan.engine import scan_path
from securenb.scan.options import ScanOptions
from securenb.scan.report import FileReport, Finding, ScanReport, Severity, Verdict
from securenb.scan.rules import RULES, Rule
from securenb.scan.safe_load import ScanRefusedError, safe_load
from securenb.scan.sarif import to_sarif

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
