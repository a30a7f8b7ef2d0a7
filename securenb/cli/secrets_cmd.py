"""`securenb secrets scan PATH...` and `securenb secrets strip NOTEBOOK`.

scan: exit 0 nothing found, 1 possible secrets (listed by file, cell, part,
line and kind; never the value), 2 could not read. strip: removes the outputs
that hold secrets (atomically); exit 1 if secrets remain in cell sources.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from securenb.core.fsutil import atomic_write_bytes


@click.group()
def secrets() -> None:
    """Secrets in notebooks (sources and outputs) and text files."""


@secrets.command("scan")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--sarif", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write a SARIF 2.1.0 log.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON on stdout.")
def scan(paths: tuple[Path, ...], sarif: Path | None, as_json: bool) -> None:
    """Find what looks like secrets (exit 0 none, 1 found, 2 error)."""
    from securenb.secretscan import scan_paths
    from securenb.secretscan.sarif import to_sarif

    found = scan_paths(list(paths))
    if sarif is not None:
        atomic_write_bytes(sarif, json.dumps(to_sarif(found), indent=2).encode())
    if as_json:
        click.echo(json.dumps({"findings": [f.to_json() for f in found]}, indent=2))
    else:
        for f in found:
            click.echo(f"{f.where()}: possible {', '.join(f.kinds)}")
        click.echo(f"{len(found)} possible secret(s)" + (
            "; `securenb secrets strip NOTEBOOK` removes the outputs holding them"
            if any(f.in_output for f in found) else ""))
    raise SystemExit(1 if found else 0)


@secrets.command("strip")
@click.argument("notebook", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write here instead of in place.")
def strip_cmd(notebook: Path, output: Path | None) -> None:
    """Remove the outputs that hold secrets (exit 1 if secrets remain in sources)."""
    from securenb.secretscan import strip

    result = strip(notebook, output)
    click.echo(f"removed {result.removed} output(s) holding secrets from {output or notebook}")
    for f in result.remaining:
        click.echo(f"still in a source: {f.where()}: possible {', '.join(f.kinds)}", err=True)
    raise SystemExit(1 if result.remaining else 0)
