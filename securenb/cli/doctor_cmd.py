"""`securenb doctor`: which sandboxes and GPUs this machine offers; workspace health."""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from securenb.cli.output import console, emit, err_console, json_option, workspace_from
from securenb.core.audit.consistency import unaccounted
from securenb.core.policy import IsolationPolicy
from securenb.errors import WorkspaceError
from securenb.isolation.detect import Capability, detect_all

KERNEL_BACKENDS = ("bwrap", "podman", "docker")
"""Backends whose sandbox doctor starts a real kernel in and runs a cell."""
POD_CHECK = "import ipykernel; assert 6 * 7 == 42"
"""What doctor's Kubernetes pod runs: the kernel pod's image and hardening, a one-shot
command instead of ipykernel (this machine may not reach pod IPs, as a kernel's parent
in the cluster does)."""
POD_TIMEOUT_S = 120.0
_POD_STUCK = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CreateContainerError",
              "CreateContainerConfigError", "RunContainerError")


@click.command()
@click.option("--check-store", is_flag=True,
              help="Also rehash every blob, check the index, and check that the audit log "
                   "accounts for every run, attestation and artifact.")
@click.option("--namespace", default="default", show_default=True,
              help="Kubernetes namespace for the test pod (where kernel pods run).")
@json_option
@click.pass_context
def doctor(ctx: click.Context, check_store: bool, namespace: str, as_json: bool) -> None:
    """Report sandboxes (bwrap, podman, docker, kubernetes), GPUs and workspace health."""
    try:
        ws = workspace_from(ctx)
    except WorkspaceError as exc:
        ws, problem = None, str(exc)
    isolation = ws.policy.isolation if ws is not None else IsolationPolicy()
    capabilities = [_kernel_check(c) if c.name in KERNEL_BACKENDS and c.available
                    else _pod_check(c, isolation, namespace)
                    if c.name == "kubernetes" and c.available else c
                    for c in detect_all()]
    data: dict[str, Any] = {"capabilities": [c.to_json() for c in capabilities]}
    if ws is None:
        data["workspace"] = {"error": problem}
    else:
        data["workspace"] = {
            "path": str(ws.dir),
            "policy": str(ws.policy_and_source[1] or "defaults"),
        }
        if check_store:
            data["workspace"]["problems"] = [
                *ws.store.check(), *unaccounted(ws.audit_log.read(), ws.store)]
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


def _pod_check(cap: Capability, isolation: IsolationPolicy, namespace: str) -> Capability:
    """Available only if a pod with the kernel pod's hardening (Pod Security Standards
    "restricted"), Secret and NetworkPolicy is admitted, pulls the policy's image and
    runs ``POD_CHECK`` in it; all three objects are deleted whatever happened."""
    from securenb.isolation import kube
    from securenb.isolation.spec import build_spec

    if not isolation.image:
        return dataclasses.replace(cap, available=False, detail=(
            f"{cap.detail}, but no pod started: no kernel image; set [isolation] image "
            "(an image with python3 and ipykernel) in the policy"))
    kernel_id = f"doctor-{os.urandom(4).hex()}"
    with tempfile.TemporaryDirectory(prefix="securenb-doctor-") as tmp, \
            err_console.status(f"starting a kubernetes pod in {namespace}", spinner="dots"):
        cleanup = kube.KubernetesProvisioner(kernel_id=kernel_id, namespace=namespace)
        created, failure, left = False, None, ""
        try:
            spec = build_spec(isolation, workdir=Path(tmp), backend="kubernetes", timeout=60)
            pod = kube.pod_manifest(spec, kernel_id, namespace)
            pod["spec"]["containers"][0]["command"] = ["python3", "-c", POD_CHECK]
            client = kube._client()
            core, net = client.CoreV1Api(), client.NetworkingV1Api()
            created = True  # from here on, whatever was made is deleted
            core.create_namespaced_secret(namespace, kube.secret_manifest(
                kernel_id, namespace, {}, {}))
            net.create_namespaced_network_policy(namespace, kube.network_policy(
                kernel_id, namespace))
            core.create_namespaced_pod(namespace, pod)
            _wait_succeeded(core, kube.names(kernel_id), namespace)
        except Exception as exc:  # any failure means: not usable here, and why
            failure = _reason(exc)
        if created:
            try:
                cleanup._delete(pod_only=False)  # the provisioner's own clean-up
            except Exception as exc:
                left = (f"; deleting its Secret, NetworkPolicy and Pod {kube.names(kernel_id)} "
                        f"failed ({_reason(exc)}): delete them by hand")
    if failure is not None:
        return dataclasses.replace(cap, available=False, detail=(
            f"{cap.detail}, but a restricted pod did not run: {failure}{left}"))
    if left:
        return dataclasses.replace(cap, available=False,
                                   detail=f"{cap.detail}; a restricted pod ran{left}")
    return dataclasses.replace(cap, detail=(
        f"{cap.detail}; a restricted pod ({isolation.image}) started in {namespace} and "
        "ran python3 with ipykernel, then was deleted"))


def _wait_succeeded(core: Any, name: str, namespace: str) -> None:
    """Until the pod has run to success; an error naming why it did not."""
    deadline = time.monotonic() + POD_TIMEOUT_S
    while time.monotonic() < deadline:
        status = core.read_namespaced_pod(name, namespace).status
        if status.phase == "Succeeded":
            return
        states = [(c.state.waiting or c.state.terminated) for c in
                  (status.container_statuses or []) if c.state is not None]
        why = "; ".join(f"{s.reason}: {s.message or ''}".strip() for s in states
                        if s is not None and s.reason)
        if status.phase == "Failed":
            raise RuntimeError(f"pod {name} failed: {status.message or why or 'no reason given'}")
        stuck = [s for s in states if s is not None and s.reason in _POD_STUCK]
        if stuck:
            raise RuntimeError(f"pod {name} cannot start: {why}")
        time.sleep(1)
    raise RuntimeError(f"pod {name} did not finish within {POD_TIMEOUT_S:g} s")


def _reason(exc: Exception) -> str:
    """One line: the API server's message for its refusals (e.g. Pod Security admission)."""
    import json

    body, status = getattr(exc, "body", None), getattr(exc, "status", None)
    if status is not None and body:
        try:
            message = json.loads(body).get("message") or body
        except (ValueError, AttributeError):
            message = body
        text = f"{status} {getattr(exc, 'reason', '')}: {message}"
    else:
        text = str(exc)
    return " ".join(text.split())[:300] or type(exc).__name__


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
