"""``%scan_model PATH [--allow MODULE:NAME] [--no-fail]``: scan a model from a notebook.

The report shows as a card (widget in JupyterLab, HTML elsewhere, text in a terminal) and
is returned, so ``report = %scan_model model.pt --no-fail`` keeps it. Unless
``--no-fail`` is given, anything but SAFE stops the cell, so a papermill pipeline does
not go on to load an unsafe or unanalysed model. In a workspace the scan is recorded as
a signed attestation and the policy's ``[scan] allow_globals`` apply.
"""

from __future__ import annotations

import html
import shlex
from pathlib import Path
from typing import Any

from IPython.core.error import UsageError

from securenb.core.workspace import Workspace
from securenb.errors import SecurenbError
from securenb.kernel.args import MagicArgumentParser
from securenb.kernel.display import show_result
from securenb.scan import ScanReport, Verdict, scan_path
from securenb.scan.attestation import scan_statement
from securenb.scan.engine import Digests

_COLOURS = {Verdict.SAFE: "#1a7f37", Verdict.UNKNOWN: "#9a6700", Verdict.UNSAFE: "#cf222e"}
_SHOWN = 20


def register(ipython: Any) -> None:
    """Add ``%scan_model`` to ``ipython`` (called by securenb.kernel's extension loader)."""
    ipython.register_magic_function(scan_model, "line", "scan_model")


_PARSER = MagicArgumentParser(prog="%scan_model", description="Scan a model file or folder.")
_PARSER.add_argument("path", help="model file or folder")
_PARSER.add_argument(
    "--allow",
    action="append",
    default=[],
    metavar="MODULE:NAME",
    help="trust one more pickle global (repeatable)",
)
_PARSER.add_argument("--no-fail", action="store_true", help="do not stop the cell if not SAFE")
_PARSER.add_argument("--no-record", action="store_true", help="do not record in the workspace")


def scan_model(line: str) -> ScanReport:
    """Scan, show, record; stop the cell unless the verdict is SAFE (or --no-fail)."""
    args = _PARSER.parse_args(shlex.split(line))
    path = Path(args.path).expanduser().absolute()
    ws = _workspace(path)
    extra = [*(ws.policy.scan.allow_globals if ws else ()), *args.allow]
    recording = ws is not None and not args.no_record
    digests: Digests = {}
    try:
        report = scan_path(path, extra_allowed_globals=extra,
                           digests=digests if recording else None)
    except (FileNotFoundError, ValueError) as exc:
        raise UsageError(f"scan_model: {exc}") from None
    note = _record(ws, report, digests) if ws is not None and recording else None
    show(report, note)
    if report.verdict is not Verdict.SAFE and not args.no_fail:
        raise UsageError(f"scan_model: {path} is {report.verdict.value}")
    return report


def _workspace(path: Path) -> Workspace | None:
    try:
        return Workspace.find(path if path.is_dir() else path.parent)
    except SecurenbError:
        return None


def _record(ws: Workspace, report: ScanReport, digests: Digests) -> str:
    try:
        ws.unlock_records()  # unlock first: a locked key must not leave half a record behind
        statement = scan_statement(ws, report, digests)
        if statement is None:
            return "nothing recorded (no files)"
        return f"recorded: attestation sha256:{ws.attest(statement).envelope[:16]}..."
    except SecurenbError as exc:
        return f"not recorded: {exc}"


def to_text(report: ScanReport, note: str | None = None) -> str:
    counts = report.counts()
    lines = [
        f"{report.verdict.value}: {report.target} ({len(report.files)} file(s): "
        f"{counts['SAFE']} safe, {counts['UNKNOWN']} unknown, {counts['UNSAFE']} unsafe)"
    ]
    for finding in [f for f in report.all_findings() if f.verdict is not Verdict.SAFE][:_SHOWN]:
        where = f" [{finding.member}]" if finding.member else ""
        lines.append(
            f"  {finding.verdict.value} {finding.rule}: {finding.message} "
            f"({Path(finding.path).name}{where})"
        )
    if note:
        lines.append(f"  {note}")
    return "\n".join(lines)


def to_html(report: ScanReport, note: str | None = None) -> str:
    """A card coloured by verdict: the verdict first, then the findings that decided it."""
    colour = _COLOURS[report.verdict]
    rows = "".join(
        f"<tr><td style='color:{_COLOURS[f.verdict]}'>{f.verdict.value}</td>"
        f"<td>{html.escape(Path(f.path).name + (f' [{f.member}]' if f.member else ''))}</td>"
        f"<td><code>{html.escape(f.rule)}</code></td><td>{html.escape(f.message)}</td></tr>"
        for f in [f for f in report.all_findings() if f.verdict is not Verdict.SAFE][:_SHOWN]
    )
    counts = report.counts()
    summary = (
        f"{len(report.files)} file(s): {counts['SAFE']} safe, {counts['UNKNOWN']} unknown, "
        f"{counts['UNSAFE']} unsafe"
    )
    return (
        f"<div style='border-left:6px solid {colour};padding:4px 8px'>"
        f"<b style='color:{colour}'>{report.verdict.value}</b> {html.escape(report.target)}"
        f"<div>{html.escape(summary)}</div>"
        + (f"<table>{rows}</table>" if rows else "")
        + (f"<div><i>{html.escape(note)}</i></div>" if note else "")
        + "</div>"
    )


def show(report: ScanReport, note: str | None = None) -> None:
    """A widget in JupyterLab, with HTML and text for everything else."""
    show_result(to_text(report, note), lambda: to_html(report, note))
