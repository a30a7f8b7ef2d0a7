"""The click group of the `securenb` command (imported by securenb.cli.main when needed).

Commands load lazily (click's documented LazyGroup pattern): signing pulls in
sigstore and model-signing, data pulls in pandas; `securenb artifacts` should
not pay for them.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import click

from securenb import __version__
from securenb.cli.main import COMMANDS, HELP, OPTION_C_HELP, SHORT_HELP


class LazyGroup(click.Group):
    """A group whose sub-commands are imported only when they are invoked."""

    def __init__(self, *args: object, lazy: dict[str, str], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.lazy])

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list of --help, from SHORT_HELP where it has the command."""
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(map(len, names), default=0)  # as click.Group does
        rows = []
        for name in names:
            if name in self.lazy and name in SHORT_HELP:
                stub = click.Command(name, help=SHORT_HELP[name])  # click's own shortening
                rows.append((name, stub.get_short_help_str(limit)))
            elif (command := self.get_command(ctx, name)) is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

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
    help=HELP,
)
@click.option(
    "-C",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    help=OPTION_C_HELP,
)
@click.version_option(__version__, prog_name="securenb")
@click.pass_context
def cli(ctx: click.Context, directory: Path | None) -> None:
    """The group; its help text is HELP (securenb.cli.main writes --help from it)."""
    ctx.obj = {"directory": directory}
