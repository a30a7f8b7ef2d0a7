"""`securenb doctor`: which sandboxes and GPUs this machine offers; workspace health."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from securenb.cli.output import console, emit, err_console, json_option, workspace_from
from securenb.core.audit.consistency import unaccounted
from securenb.errors import WorkspaceError
from securenb.isolation.detect import Capability, detect_all

KERNEL_BACKENDS = ("bwrap", "podman", "docker")
"""Backends whose sandbox doctor starts a real kernel in. Kubernetes needs an image with
ipykernel and a namespace, which only its kernelspec names, so doctor starts no pod and
does not call it available."""


@click.command()
@click.option("--check-store", is_flag=True,
              help="Also rehash every blob, check the index, and check that the audit log "
                   "accounts for every run, attestation and artifact.")
@json_option
@click.pass_context
def doctor(ctx: click.Context, check_store: bool, as_json: bool) -> None:
    """Report sandboxes (bwrap, podman, docker, kubernetes), GPUs and workspace health."""
    capabilities = [_kernel_check(c) if c.name in KERNEL_BACKENDS and c.available
                    else _unproven(c) if c.name == "kubernetes" and c.available else c
                    for c in detect_all()]
    data: dict[str, Any] = {"capabilities": [c.to_json() for c in capabilities]}
    try:
        ws = workspace_from(ctx)
        data["workspace"] = {
            "path": str(ws.dir),
            "policy": str(ws.policy_and_source[1] or "defaults"),
        }
        if check_store:
            data["workspace"]["problems"] = [
                *ws.store.check(), *unaccounted(ws.audit_log.read(), ws.store)]
    except WorkspaceError as exc:
        data["workspace"] = {"error": str(exc)}
    emit(data, as_json, _render)
    if data["workspace"].get("problems"):
        raise SystemExit(1)


def _kernel_check(cap: Capability) -> Capability:
    """Available only if a kernel starts in this backend's sandbox and runs a cell: a
    binary that answers --version is not a sandbox that works (podman without catatonit)."""
    from securenb.core.policy import IsolationPolicy
    from securenb.isolation.spec import build_spec
    from securenb.isolation.subkernel import SubKernel

    with tempfile.TemporaryDirectory(prefix="securenb-doctor-") as tmp, \
            err_console.status(f"starting a {cap.name} kernel", spinner="dots"):
        kernel = None
        try:
            spec = build_spec(IsolationPolicy(), workdir=Path(tmp), backend=cap.name,
                              timeout=60)
            kernel = SubKernel(spec, {})
            kernel.start(timeout=90)
            assert kernel.kc is not None
            reply = kernel.kc.execute_interactive("assert 6 * 7 == 42", timeout=60,
                                                  output_hook=lambda msg: None)
            if reply["content"]["status"] != "ok":
                raise RuntimeError(f"a cell failed: {reply['content'].get('evalue', '?')}")
        except Exception as exc:  # any failure means: not usable here, and why
            reason = " ".join(str(exc).split())[:300] or type(exc).__name__
            return dataclasses.replace(cap, available=False,
                                       detail=f"{cap.detail}, but a kernel did not start: "
                                              f"{reason}")
        finally:
            if kernel is not None:
                kernel.shutdown(now=True)
    return dataclasses.replace(cap, detail=f"{cap.detail}; a kernel started and ran a cell")


def _unproven(cap: Capability) -> Capability:
    return dataclasses.replace(cap, available=False, detail=(
        f"{cap.detail}; no kernel started (doctor starts no pod): install the kernelspec "
        "(`securenb kernels install --backend kubernetes --image IMG`) and run a notebook in it"))


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
