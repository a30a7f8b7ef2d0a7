"""The in-toto Statement recording a scan: subjects are the scanned files, the predicate is
the report (schema ``securenb/schemas/scan.v1.json``).

Each subject names the bytes that were scanned: scan with ``scan_path(..., digests=d)``
(securenb.scan.snapshot) and pass ``d`` here; the statement is signed with
``Workspace.attest``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from securenb.core.attest import SCAN_PREDICATE, Subject, make_statement
from securenb.scan.engine import Digests
from securenb.scan.report import ScanReport

if TYPE_CHECKING:
    from securenb.core.workspace import Workspace


def scan_statement(ws: Workspace, report: ScanReport, digests: Digests) -> dict[str, Any] | None:
    """The statement for ``report``, each file indexed in ``ws`` under the digest of the
    bytes scanned; None when no file was read (nothing to name as a subject).

    A file the scan could not read has no digest and is left out."""
    subjects = []
    for fr in report.files:
        if fr.path in digests:
            digest, size = digests[fr.path]
            artifact = ws.record_artifact(Path(fr.path), digest=digest, size=size)
            subjects.append(Subject(artifact.path, artifact.digest))
    if not subjects:
        return None
    return make_statement(subjects, SCAN_PREDICATE, report.to_dict())
