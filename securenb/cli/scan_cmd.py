"""`securenb scan PATH...`: deny-by-default model scan, with JSON and SARIF output.

Exit codes: 0 every file SAFE; 1 something UNSAFE; 2 something UNKNOWN (not fully
analysed) or a path that could not be read. In a workspace, the scan is recorded as a
signed attestation (predicate https://securenb.dev/attestation/scan/v1) about the
scanned files, and the policy's ``[scan] allow_globals`` extend the allowlist.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from securenb.errors import SecurenbError

if TYPE_CHECKING:
    from rich.console import Console

    from securenb.core.workspace import Workspace
    from securenb.scan import ScanReport

_COLOURS = {"SAFE": "green", "UNKNOWN": "yellow", "UNSAFE": "red"}
_LISTED = 50


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--sarif",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write a SARIF 2.1.0 log to this file.",
)
@click.option(
    "--allow",
    "allow",
    multiple=True,
    metavar="MODULE:NAME",
    help="Trust one more pickle global (repeatable; adds to the policy's list).",
)
@click.option("--no-record", is_flag=True, help="Do not record the scan in the workspace.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON on stdout.")
@click.pass_context
def scan(
    ctx: click.Context,
    paths: tuple[Path, ...],
    sarif: Path | None,
    allow: tuple[str, ...],
    no_record: bool,
    as_json: bool,
) -> None:
    """Scan model files or folders for code that runs on load (exit 0 safe, 1 unsafe, 2 unknown)."""
    # CPython's unpickler helper boots (a separate process) while the scanners and rich load
    from securenb.scan.unpickle_probe import warm_up

    warm_up()
    from securenb.core.fsutil import atomic_write_bytes
    from securenb.scan import Verdict, scan_path, to_sarif

    ws = _workspace(ctx)
    extra = [*(ws.policy.scan.allow_globals if ws else ()), *allow]
    reports: list[ScanReport] = []
    missing: list[str] = []
    with _Progress() as on_file:
        for path in paths:
            try:
                reports.append(scan_path(path, extra_allowed_globals=extra, on_file=on_file))
            except FileNotFoundError as exc:
                missing.append(str(exc))
            except ValueError as exc:  # a malformed --allow / policy entry
                raise click.UsageError(str(exc)) from None
    if sarif is not None:
        atomic_write_bytes(sarif, json.dumps(to_sarif(reports), indent=2).encode())
    recorded = _record(ws, reports) if ws is not None and not no_record else []
    verdict = Verdict.UNKNOWN if missing else Verdict.SAFE
    for report in reports:
        verdict = verdict.worst(report.verdict)
    if as_json:
        click.echo(
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
    else:  # rich only here: `--json` (CI) does not import it
        from rich.markup import escape

        for report in reports:
            _render(report)
        for problem in missing:
            _console(stderr=True).print(f"error: {escape(problem)}")
    raise SystemExit({Verdict.SAFE: 0, Verdict.UNSAFE: 1, Verdict.UNKNOWN: 2}[verdict])


def _workspace(ctx: click.Context) -> Workspace | None:
    """The workspace of ``-C DIR`` or the current folder, if any.

    Importing the workspace (keys, attestations, schemas) costs more than a scan: it is
    imported only when a ``.securenb/`` folder is actually there.
    """
    obj = ctx.find_root().obj
    start = Path((obj or {}).get("directory") or Path.cwd()).resolve()
    if not any(
        (folder / ".securenb" / "config.toml").is_file() for folder in (start, *start.parents)
    ):
        return None
    from securenb.core.workspace import Workspace

    try:
        return Workspace.find(start)
    except SecurenbError:
        return None


def _record(ws: Workspace, reports: list[ScanReport]) -> list[str]:
    """Record each scanned file and one signed scan attestation per path: the envelope digests.

    A scan result stays valid if recording fails (e.g. the key cannot be unlocked): the
    failure is reported on stderr and the exit code is the scan's.
    """
    from rich.markup import escape

    from securenb.scan.attestation import scan_statement

    digests = []
    try:
        ws.signer()  # unlock first: a locked key must not leave half a record behind
        for report in reports:

            def digest_of(path: str) -> tuple[str, str]:
                artifact = ws.record_artifact(Path(path))
                return artifact.path, artifact.digest

            statement = scan_statement(report, digest_of)
            if statement is not None:
                digests.append(f"sha256:{ws.attest(statement).envelope}")
    except SecurenbError as exc:
        _console(stderr=True).print(
            f"warning: scan not recorded in the workspace: {escape(str(exc))}"
        )
    return digests


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


def _render(report: ScanReport) -> None:
    from rich.markup import escape
    from rich.table import Table

    from securenb.scan import Verdict

    console = _console()
    colour = _COLOURS[report.verdict.value]
    counts = report.counts()
    console.print(
        f"[bold {colour}]{report.verdict.value}[/] {escape(report.target)} "
        f"({len(report.files)} file(s): {counts['SAFE']} safe, {counts['UNKNOWN']} "
        f"unknown, {counts['UNSAFE']} unsafe; {report.seconds:.3f} s)"
    )
    files = (
        report.files
        if len(report.files) <= _LISTED
        else [f for f in report.files if f.verdict is not Verdict.SAFE]
    )
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    for column in ("verdict", "file", "format", "findings"):
        table.add_column(column, overflow="fold")
    for fr in files:
        shown = [f for f in fr.findings if f.verdict is not Verdict.SAFE][:5]
        lines = [
            f"[{_COLOURS[f.verdict.value]}]{escape(f.rule)}[/]: {escape(f.message)}"
            + (f" [dim]({escape(f.member)})[/]" if f.member else "")
            + (f" [dim]@{f.offset}[/]" if f.offset is not None else "")
            for f in shown
        ]
        hidden = len([f for f in fr.findings if f.verdict is not Verdict.SAFE]) - len(shown)
        if hidden > 0:
            lines.append(f"[dim]... {hidden} more[/]")
        table.add_row(
            f"[{_COLOURS[fr.verdict.value]}]{fr.verdict.value}[/]",
            escape(fr.path),
            escape(fr.format),
            "\n".join(lines) or "-",
        )
    for f in report.findings:
        table.add_row(
            f"[{_COLOURS[f.verdict.value]}]{f.verdict.value}[/]",
            escape(f.path),
            "-",
            f"{escape(f.rule)}: {escape(f.message)}",
        )
    if files or report.findings:
        console.print(table)
