"""`securenb gate ARTIFACT [--json|--sarif FILE]`: may this artifact go on?

Exit codes: 0 PASS, 1 FAIL (a rule failed), 2 INCOMPLETE (a required check
never ran or could not decide) or bad input. The verdict is recorded as a gate
attestation and an audit entry unless ``--no-record``.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from securenb.cli.output import workspace_from
from securenb.core.fsutil import atomic_write_bytes


@click.command()
@click.argument("artifact")
@click.option("--json", "as_json", is_flag=True, help="Print the verdict as JSON on stdout.")
@click.option("--sarif", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write a SARIF 2.1.0 log (one result per rule that did not pass).")
@click.option("--no-record", is_flag=True, help="Do not record the verdict in the workspace.")
@click.pass_context
def gate(ctx: click.Context, artifact: str, as_json: bool, sarif: Path | None,
         no_record: bool) -> None:
    """Gate verdict for a file or sha256:<hex> (exit 0 PASS, 1 FAIL, 2 INCOMPLETE)."""
    from securenb.gate import evaluate

    ws = workspace_from(ctx)
    verdict = evaluate(ws, artifact, record=not no_record)
    if sarif is not None:
        atomic_write_bytes(sarif, json.dumps(verdict.to_sarif(), indent=2).encode())
    if as_json:
        click.echo(json.dumps(verdict.to_json(), indent=2))
    else:
        colour = {"PASS": "green", "FAIL": "red", "INCOMPLETE": "yellow"}[verdict.outcome]
        lines = verdict.to_text().splitlines()
        click.echo(click.style(lines[0], fg=colour, bold=True))
        for line in lines[1:]:
            click.echo(line)
    raise SystemExit(verdict.exit_code)
