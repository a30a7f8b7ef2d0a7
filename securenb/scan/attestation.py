"""The in-toto Statement recording a scan: subjects are the scanned files, the predicate is
the report (schema ``securenb/schemas/scan.v1.json``).

Kept free of the workspace: front-ends pass ``digest_of`` (typically recording each file as
an artifact) and sign the statement with ``Workspace.attest``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from securenb.core.attest import SCAN_PREDICATE, Subject, make_statement
from securenb.scan.report import ScanReport


def scan_statement(
    report: ScanReport, digest_of: Callable[[str], tuple[str, str]]
) -> dict[str, Any] | None:
    """The statement for ``report``; ``digest_of(path)`` returns (subject name, sha256 hex).

    None when no regular file was scanned (nothing to name as a subject).
    """
    subjects = [
        Subject(*digest_of(fr.path))
        for fr in report.files
        if fr.format not in ("symlink", "special")
    ]
    if not subjects:
        return None
    return make_statement(subjects, SCAN_PREDICATE, report.to_dict())
