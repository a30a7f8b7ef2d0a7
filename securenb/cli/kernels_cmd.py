"""`securenb kernels`: install, list and remove isolated Jupyter kernels."""

from __future__ import annotations

import sys
from typing import Any

import click
from rich.table import Table

from securenb.cli.output import console, emit, json_option
from securenb.isolation import kernelspecs


@click.group()
def kernels() -> None:
    """Isolated kernels ("Python 3 (isolated, bwrap)") for JupyterLab and papermill -k."""


@kernels.command("install")
@click.option("--backend", "backends", multiple=True, default=["bwrap"], show_default=True,
              type=click.Choice(list(kernelspecs.BACKENDS)), help="Sandbox backend (repeatable).")
@click.option("--user", is_flag=True, help="Install for this user (~/.local/share/jupyter).")
@click.option("--prefix", default=None,
              help="Install under PREFIX/share/jupyter/kernels (default: sys.prefix, this "
                   "environment).")
@click.option("--image", default=None, help="kubernetes: the kernel image (with ipykernel).")
@click.option("--namespace", default=None, help="kubernetes: namespace of the kernel pods.")
@json_option
def install(backends: tuple[str, ...], user: bool, prefix: str | None, image: str | None,
            namespace: str | None, as_json: bool) -> None:
    """Add isolated kernelspecs (default: into this environment, sys.prefix)."""
    if user and prefix:
        raise click.UsageError("give --user or --prefix, not both")
    where = None if user else (prefix or sys.prefix)  # as `ipykernel install --sys-prefix`
    done = [kernelspecs.install(b, user=user, prefix=where, image=image, namespace=namespace)
            for b in backends]
    emit([k.to_json() for k in done], as_json, _render_installed)


@kernels.command("list")
@json_option
def list_(as_json: bool) -> None:
    """Show the securenb kernelspecs Jupyter can see."""
    emit([k.to_json() for k in kernelspecs.installed()], as_json, _render_table)


@kernels.command("remove")
@click.argument("names", nargs=-1, required=True)
@json_option
def remove(names: tuple[str, ...], as_json: bool) -> None:
    """Remove securenb kernelspecs by name (e.g. securenb-bwrap)."""
    removed = [{"name": n, "path": kernelspecs.remove(n)} for n in names]
    emit(removed, as_json, _render_removed)


def _render_installed(data: list[dict[str, Any]]) -> None:
    for item in data:
        console.print(f"installed [bold]{item['display_name']}[/] as {item['name']} "
                      f"in {item['path']}")


def _render_removed(data: list[dict[str, Any]]) -> None:
    for item in data:
        console.print(f"removed {item['name']} ({item['path']})")


def _render_table(data: list[dict[str, Any]]) -> None:
    table = Table("name", "display name", "backend", "usable", "path")
    for item in data:
        usable = "[green]yes[/]" if item["usable"] else "[red]no: provisioner not registered[/]"
        table.add_row(item["name"], item["display_name"], item["backend"], usable, item["path"])
    console.print(table)
