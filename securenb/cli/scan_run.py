"""The body of `securenb scan`, without click: securenb.cli.main runs it directly for a
plain ``securenb scan [--json] [--no-record] [--allow G] [--sarif F] PATH...`` (click's
import costs as much as a one-file scan), and securenb.cli.scan_cmd wraps it for click.

Output is plain text (rich's import costs as much again): colour only as ANSI codes when
stdout is a terminal and NO_COLOR is not set. Exit codes: securenb.cli.scan_cmd.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from securenb.errors import SecurenbError

if TYPE_CHECKING:
    from rich.console import Console

    from securenb.core.workspace import Workspace
    from securenb.scan import ScanReport
    from securenb.scan.engine import Digests

_COLOURS = {"SAFE": "green", "UNKNOWN": "yellow", "UNSAFE": "red"}
_ANSI = {
    "green": "32",
    "yellow": "33",
    "red": "31",
    "bold": "1",
    "dim": "2",
    "bold green": "1;32",
    "bold yellow": "1;33",
    "bold red": "1;31",
}
_LISTED = 50
# control characters (C0, DEL, C1) in names from a scanned file, shown escaped: a pickle's
# global names and a file's own names must not reach the terminal as escape sequences
_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))}


def _printable(text: str) -> str:
    """``text`` with its control characters escaped (``\\x1b``), for a terminal."""
    return text.translate(_CONTROL)


class AllowListError(ValueError):
    """A malformed ``--allow`` or policy ``allow_globals`` entry (nothing printed yet)."""


def run_scan(
    paths: tuple[Path, ...],
    sarif: Path | None,
    allow: tuple[str, ...],
    no_record: bool,
    as_json: bool,
    directory: Path | None,
) -> int:
    """Scan ``paths``, print the result, record it in the workspace; the exit code.

    A malformed ``--allow`` (or policy entry) raises AllowListError, before any output.
    """
    # CPython's unpickler helper boots (a separate process) while the scanners load
    from securenb.scan.unpickle_probe import warm_up

    warm_up()
    from securenb.core.fsutil import atomic_write_bytes
    from securenb.scan import Verdict, scan_path, to_sarif

    ws = _workspace(directory)
    extra = [*(ws.policy.scan.allow_globals if ws else ()), *allow]
    reports: list[ScanReport] = []
    missing: list[str] = []
    digests = _private_digests() if ws is not None and not no_record else None
    with _Progress() as on_file:
        for path in paths:
            try:
                reports.append(scan_path(path, extra_allowed_globals=extra, on_file=on_file,
                                         digests=digests))
            except FileNotFoundError as exc:
                missing.append(str(exc))
            except ValueError as exc:  # a malformed --allow / policy entry
                raise AllowListError(str(exc)) from None
    if sarif is not None:
        atomic_write_bytes(sarif, json.dumps(to_sarif(reports), indent=2).encode())
    recorded = _record(ws, reports, digests) if ws is not None and digests is not None else []
    verdict = Verdict.UNKNOWN if missing else Verdict.SAFE
    for report in reports:
        verdict = verdict.worst(report.verdict)
    if as_json:
        _echo(
            json.dumps(
                {
                    "verdict": verdict.value,
                    "reports": [r.to_dict() for r in reports],
                    "errors": missing,
                    "attestations": recorded,
                },
                indent=2,
            )
        )
    else:  # plain text; ANSI colour only on a terminal, and not with NO_COLOR set
        colour = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
        for report in reports:
            _render(report, colour)
        for problem in missing:
            _echo(f"error: {_printable(problem)}", err=True)
    return {Verdict.SAFE: 0, Verdict.UNSAFE: 1, Verdict.UNKNOWN: 2}[verdict]


def _echo(text: str, err: bool = False) -> None:
    """One line (or block) on stdout or stderr, as click.echo writes it, flushed."""
    stream = sys.stderr if err else sys.stdout
    stream.write(text + "\n")
    stream.flush()


def _workspace(directory: Path | None) -> Workspace | None:
    """The workspace of ``-C DIR`` or the current folder, if any.

    Importing the workspace (keys, attestations, schemas) costs more than a scan: it is
    imported only when a ``.securenb/`` folder is actually there.
    """
    start = Path(directory or Path.cwd()).resolve()
    if not any(
        (folder / ".securenb" / "config.toml").is_file() for folder in (start, *start.parents)
    ):
        return None
    from securenb.core.workspace import Workspace

    try:
        return Workspace.find(start)
    except SecurenbError:
        return None


def _private_digests() -> Digests:
    """Where a recorded scan notes the digests of the bytes it scanned
    (securenb.scan.snapshot). This process is made non-dumpable first: a file that cannot
    be leased is scanned from a private copy, which must stay out of other processes'
    reach through ``/proc``."""
    from securenb.core.vault import make_undumpable

    try:
        make_undumpable()
    except OSError as exc:
        _echo(f"warning: cannot keep the scan's copies private: {exc}", err=True)
    return {}


def _record(ws: Workspace, reports: list[ScanReport], digests: Digests) -> list[str]:
    """Record each scanned file and one signed scan attestation per path: the envelope digests.

    A scan result stays valid if recording fails (e.g. the key cannot be unlocked): the
    failure is reported on stderr and the exit code is the scan's.
    """
    from securenb.scan.attestation import scan_statement

    envelopes = []
    try:
        ws.signer()  # unlock first: a locked key must not leave half a record behind
        for report in reports:
            statement = scan_statement(ws, report, digests)
            if statement is not None:
                envelopes.append(f"sha256:{ws.attest(statement).envelope}")
    except SecurenbError as exc:
        _echo(f"warning: scan not recorded in the workspace: {_printable(str(exc))}", err=True)
    return envelopes


def _console(stderr: bool = False) -> Console:
    """rich's console for stdout or stderr, made on first use (rich costs start-up time)."""
    from rich.console import Console

    key = "stderr" if stderr else "stdout"
    if key not in _CONSOLES:
        _CONSOLES[key] = Console(stderr=stderr)
    return _CONSOLES[key]


_CONSOLES: dict[str, Console] = {}


class _Progress:
    """A bar on stderr while many files are scanned; silent (and not even imported) when
    stderr is not a terminal."""

    def __enter__(self) -> _Progress:
        self._bar: Any = None
        if not sys.stderr.isatty():
            return self
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self._bar = Progress(
            TextColumn("scanning"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.description}"),
            console=_console(stderr=True),
            transient=True,
        )
        self._bar.__enter__()
        self._task = self._bar.add_task("", total=None)
        return self

    def __call__(self, index: int, total: int, path: str) -> None:
        if self._bar is None:
            return
        from rich.markup import escape

        self._bar.update(
            self._task,
            total=total,
            completed=index,
            description=escape(Path(path).name),
            visible=total > 1,
        )

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)


def _render(report: ScanReport, colour: bool) -> None:
    """The report as plain text: a summary line, then one row per file (verdict, file,
    format, findings). No rich: its import costs as much as a one-file scan."""
    from securenb.scan import Verdict

    def paint(text: str, name: str) -> str:
        return f"\033[{_ANSI[name]}m{text}\033[0m" if colour else text

    counts = report.counts()
    out = [
        f"{paint(report.verdict.value, 'bold ' + _COLOURS[report.verdict.value])} "
        f"{_printable(report.target)} ({len(report.files)} file(s): {counts['SAFE']} safe, "
        f"{counts['UNKNOWN']} unknown, {counts['UNSAFE']} unsafe; {report.seconds:.3f} s)"
    ]
    files = (
        report.files
        if len(report.files) <= _LISTED
        else [f for f in report.files if f.verdict is not Verdict.SAFE]
    )
    rows: list[tuple[str, str, str, list[tuple[str, str]]]] = []  # findings: (plain, painted)
    for fr in files:
        unsafe = [f for f in fr.findings if f.verdict is not Verdict.SAFE]
        lines = []
        for f in unsafe[:5]:
            where = (f" ({_printable(f.member)})" if f.member else "") + (
                f" @{f.offset}" if f.offset is not None else ""
            )
            rule = _printable(f.rule)
            text = f"{rule}: {_printable(f.message)}"
            lines.append(
                (
                    text + where,
                    paint(rule, _COLOURS[f.verdict.value])
                    + text[len(rule) :]
                    + paint(where, "dim"),
                )
            )
        if len(unsafe) > 5:
            more = f"... {len(unsafe) - 5} more"
            lines.append((more, paint(more, "dim")))
        rows.append(
            (fr.verdict.value, _printable(fr.path), _printable(fr.format), lines or [("-", "-")])
        )
    for f in report.findings:
        text = _printable(f"{f.rule}: {f.message}")
        rows.append((f.verdict.value, _printable(f.path), "-", [(text, text)]))
    if rows:
        widths = [
            max(len(header), *(len(row[i]) for row in rows))
            for i, header in enumerate(("verdict", "file", "format"))
        ]

        def cell(i: int, text: str, painted: str) -> str:
            return painted + " " * (widths[i] - len(text) + 2)

        out.append(
            "".join(
                cell(i, h, paint(h, "bold")) for i, h in enumerate(("verdict", "file", "format"))
            )
            + paint("findings", "bold")
        )
        for verdict, path, fmt, lines in rows:
            head = (
                cell(0, verdict, paint(verdict, _COLOURS[verdict]))
                + cell(1, path, path)
                + cell(2, fmt, fmt)
            )
            out.append(head + lines[0][1])
            out += [" " * (sum(widths) + 6) + painted for _, painted in lines[1:]]
    _echo("\n".join(line.rstrip(" ") for line in out))
