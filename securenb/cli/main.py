"""Entry point of the `securenb` command. Exit codes: docs/cli.md."""

from __future__ import annotations

from pathlib import Path

import click

from securenb import __version__
from securenb.cli.audit_cmd import audit
from securenb.cli.data_cmd import data
from securenb.cli.doctor_cmd import doctor
from securenb.cli.keys_cmd import keys
from securenb.cli.workspace_cmd import artifacts, attestations, init, record, show
from securenb.errors import SecurenbError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-C",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    help="Run as if started in this folder.",
)
@click.version_option(__version__, prog_name="securenb")
@click.pass_context
def cli(ctx: click.Context, directory: Path | None) -> None:
    """securenb: secure ML pipelines (store, attestations, audit, keys, scans, data)."""
    ctx.obj = {"directory": directory}


for command in (init, record, artifacts, show, attestations, audit, keys, data, doctor):
    cli.add_command(command)


def main() -> None:
    """Run the CLI; a SecurenbError becomes one line on stderr and its exit code."""
    try:
        cli.main(standalone_mode=False)
    except SecurenbError as exc:
        click.echo(f"error: {exc}", err=True)  # one unwrapped line: greppable in CI logs
        raise SystemExit(exc.exit_code) from None
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        raise SystemExit(2) from None
    except click.ClickException as exc:
        exc.show()
        raise SystemExit(2) from None
