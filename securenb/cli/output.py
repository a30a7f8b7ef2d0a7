"""Shared rendering for CLI commands: JSON for machines, rich for people.

Commands build plain data; ``emit`` prints it either as JSON on stdout or via
the command's own rich renderer. Errors go to stderr, never secrets.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from securenb.core.workspace import Workspace

console = Console()
err_console = Console(stderr=True)

T = TypeVar("T")

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON on stdout.")


def emit(data: Any, as_json: bool, render: Callable[[Any], None]) -> None:
    """Print ``data`` as JSON (sorted keys, one document) or with ``render``."""
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))
    else:
        render(data)


def workspace_from(ctx: click.Context) -> Workspace:
    """The workspace for this invocation (``-C DIR`` or the current folder)."""
    start: Path | None = ctx.find_root().obj.get("directory") if ctx.find_root().obj else None
    return Workspace.find(start)


@contextmanager
def progress_bar(
    total: int | None, description: str, *, bytes_: bool = False
) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr; yields ``advance(n)``. Silent when not a TTY."""
    columns: list[Any] = [TextColumn("{task.description}"), BarColumn(), TaskProgressColumn()]
    if bytes_:
        columns += [DownloadColumn(), TransferSpeedColumn()]
    columns.append(TimeRemainingColumn())
    with Progress(*columns, console=err_console, disable=not sys.stderr.isatty()) as progress:
        task = progress.add_task(description, total=total)
        yield lambda n: progress.advance(task, n)


def track(items: Iterable[T], total: int, description: str) -> Iterator[T]:
    """Iterate ``items`` with a progress bar."""
    with progress_bar(total, description) as advance:
        for item in items:
            yield item
            advance(1)
