"""`securenb doctor`: which sandboxes and GPUs this machine offers; workspace health."""

from __future__ import annotations

from typing import Any

import click
from rich.table import Table

from securenb.cli.output import console, emit, json_option, workspace_from
from securenb.errors import WorkspaceError
from securenb.isolation.detect import detect_all


@click.command()
@click.option("--check-store", is_flag=True, help="Also rehash every blob and check the index.")
@json_option
@click.pass_context
def doctor(ctx: click.Context, check_store: bool, as_json: bool) -> None:
    """Report sandboxes (bwrap, podman, docker, kubernetes), GPUs and workspace health."""
    data: dict[str, Any] = {"capabilities": [c.to_json() for c in detect_all()]}
    try:
        ws = workspace_from(ctx)
        data["workspace"] = {
            "path": str(ws.dir),
            "policy": str(ws.policy_and_source[1] or "defaults"),
        }
        if check_store:
            data["workspace"]["problems"] = ws.store.check()
    except WorkspaceError as exc:
        data["workspace"] = {"error": str(exc)}
    emit(data, as_json, _render)
    if data["workspace"].get("problems"):
        raise SystemExit(1)


def _render(data: dict[str, Any]) -> None:
    table = Table("backend", "available", "version", "detail")
    for c in data["capabilities"]:
        mark = "[green]yes[/]" if c["available"] else "[red]no[/]"
        table.add_row(c["name"], mark, c["version"], c["detail"])
    console.print(table)
    ws = data["workspace"]
    if "error" in ws:
        console.print(f"workspace: [yellow]{ws['error']}[/]")
        return
    console.print(f"workspace: {ws['path']} (policy: {ws['policy']})")
    for problem in ws.get("problems", []):
        console.print(f"  [red]{problem}[/]")
    if "problems" in ws and not ws["problems"]:
        console.print("  [green]store check passed[/]")
