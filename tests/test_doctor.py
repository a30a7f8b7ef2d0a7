"""`securenb doctor` calls a sandbox available only once a real kernel ran in it, and
`--check-store` finds records the audit log does not account for."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from securenb.core.workspace import Workspace

SECURENB = str(Path(sys.executable).parent / "securenb")


def _doctor(cwd: Path, env: dict[str, str] | None = None, *args: str) -> dict[str, object]:
    proc = subprocess.run([SECURENB, "doctor", "--json", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=600, check=False, env={**os.environ, **(env or {})})
    data: dict[str, object] = json.loads(proc.stdout)
    data["returncode"] = proc.returncode
    return data


def _backend(report: dict[str, object], name: str) -> dict[str, object]:
    caps = report["capabilities"]
    assert isinstance(caps, list)
    (cap,) = [c for c in caps if c["name"] == name]
    return dict(cap)


@pytest.mark.skipif(shutil.which("podman") is None, reason="podman is not installed")
def test_a_podman_that_cannot_start_a_kernel_is_not_available(tmp_path: Path) -> None:
    """What a missing catatonit looked like: `podman --version` works, containers do not."""
    shim = tmp_path / "bin"
    shim.mkdir()
    real = shutil.which("podman")
    (shim / "podman").write_text(
        "#!/bin/sh\n"
        f'case "$1" in --version|version|info) exec {real} "$@";; esac\n'
        'echo "Error: OCI runtime error: catatonit: executable file not found" >&2\nexit 127\n')
    (shim / "podman").chmod(0o755)
    report = _doctor(tmp_path, {"PATH": f"{shim}{os.pathsep}{os.environ['PATH']}"})
    podman = _backend(report, "podman")
    assert podman["available"] is False, podman
    assert "a kernel did not start" in str(podman["detail"])


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bwrap is not installed")
def test_bwrap_is_available_once_a_kernel_ran(tmp_path: Path) -> None:
    bwrap = _backend(_doctor(tmp_path), "bwrap")
    assert bwrap["available"] is True and "a kernel started and ran a cell" in str(
        bwrap["detail"]), bwrap


def test_check_store_finds_a_run_with_no_audit_entry(workspace: Workspace,
                                                     tmp_path: Path) -> None:
    assert _doctor(tmp_path, None, "--check-store")["returncode"] == 0
    workspace.store.start_run("1" * 32, "secure_train")
    report = _doctor(tmp_path, None, "--check-store")
    assert report["returncode"] == 1
    problems = report["workspace"]["problems"]  # type: ignore[index]
    assert any(f"run {'1' * 32}" in p for p in problems), problems


def test_kubernetes_is_not_called_available_without_a_kernel(tmp_path: Path) -> None:
    """A kubeconfig file is not a cluster that runs kernels."""
    pytest.importorskip("kubernetes")
    (tmp_path / "kubeconfig").write_text("apiVersion: v1\nkind: Config\n")
    kube = _backend(_doctor(tmp_path, {"KUBECONFIG": str(tmp_path / "kubeconfig")}), "kubernetes")
    assert kube["available"] is False, kube
    assert "no pod started: no kernel image" in str(kube["detail"])
