"""Entry point of the `securenb` command. Exit codes: docs/cli.md.

Commands load lazily (click's documented LazyGroup pattern): signing pulls in
sigstore and model-signing, data pulls in pandas; `securenb --help` or
`securenb artifacts` should not pay for them.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import click

from securenb import __version__
from securenb.errors import SecurenbError

COMMANDS = {
    "init": "securenb.cli.workspace_cmd:init",
    "record": "securenb.cli.workspace_cmd:record",
    "artifacts": "securenb.cli.workspace_cmd:artifacts",
    "show": "securenb.cli.workspace_cmd:show",
    "attestations": "securenb.cli.workspace_cmd:attestations",
    "audit": "securenb.cli.audit_cmd:audit",
    "keys": "securenb.cli.keys_cmd:keys",
    "agent": "securenb.cli.agent_cmd:agent",
    "sign": "securenb.cli.sign_cmd:sign",
    "verify": "securenb.cli.sign_cmd:verify",
    "cosign": "securenb.cli.sign_cmd:cosign",
    "scan": "securenb.cli.scan_cmd:scan",
    "data": "securenb.cli.data_cmd:data",
    "kernels": "securenb.cli.kernels_cmd:kernels",
    "doctor": "securenb.cli.doctor_cmd:doctor",
}


class LazyGroup(click.Group):
    """A group whose sub-commands are imported only when they are invoked."""

    def __init__(self, *args: object, lazy: dict[str, str], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.lazy])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.lazy:
            return super().get_command(ctx, cmd_name)
        module, _, attr = self.lazy[cmd_name].partition(":")
        command = getattr(importlib.import_module(module), attr)
        if not isinstance(command, click.Command):
            raise TypeError(f"{self.lazy[cmd_name]} is not a click command")
        return command


@click.group(
    cls=LazyGroup,
    lazy=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option(
    "-C",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    help="Run as if started in this folder.",
)
@click.version_option(__version__, prog_name="securenb")
@click.pass_context
def cli(ctx: click.Context, directory: Path | None) -> None:
    """securenb: secure ML pipelines (store, attestations, audit, keys, signing, scans, data)."""
    ctx.obj = {"directory": directory}


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
