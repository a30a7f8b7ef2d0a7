"""`securenb scan PATH...`: deny-by-default model scan, with JSON and SARIF output.

Exit codes: 0 every file SAFE; 1 something UNSAFE; 2 something UNKNOWN (not fully
analysed) or a path that could not be read. In a workspace, the scan is recorded as a
signed attestation (predicate https://securenb.dev/attestation/scan/v1) about the
scanned files, and the policy's ``[scan] allow_globals`` extend the allowlist.
"""

from __future__ import annotations

from pathlib import Path

import click


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
    from securenb.cli.scan_run import AllowListError, run_scan

    obj = ctx.find_root().obj
    try:
        code = run_scan(paths, sarif, allow, no_record, as_json, (obj or {}).get("directory"))
    except AllowListError as exc:  # a malformed --allow / policy entry
        raise click.UsageError(str(exc)) from None
    raise SystemExit(code)
