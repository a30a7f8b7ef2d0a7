"""`securenb doctor` and Kubernetes: available only once a restricted pod really ran, and
whatever it created is deleted, whatever happened (issue 10 leftovers).

There is no cluster on this machine: the Kubernetes API is served by a small HTTP server
holding objects in memory (as tests/test_isolation_kube.py does), which the real
`kubernetes` client, configured by a real KUBECONFIG, talks to. What it cannot show: Pod
Security admission, image pulls and the kubelet; `tests/test_isolation_kube.py::
test_kernel_pod_on_a_real_cluster` runs against a real cluster when KUBECONFIG is set.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kube_api import ApiServer

from securenb.core.workspace import Workspace
from securenb.isolation.detect import check_kubernetes

pytest.importorskip("kubernetes")
SECURENB = str(Path(sys.executable).parent / "securenb")
PASSPHRASE = "doctor passphrase"  # a test-only passphrase

@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    Workspace.init(root, PASSPHRASE)
    (root / "securenb.toml").write_text('[isolation]\nimage = "python:3.11-slim"\n')
    return root


def _kube(cwd: Path, env: dict[str, str]) -> dict[str, Any]:
    """doctor's kubernetes line, from the command as a user runs it (HOME has no ~/.kube)."""
    base = {k: v for k, v in os.environ.items()
            if k not in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST")}
    proc = subprocess.run([SECURENB, "doctor", "--json"], cwd=cwd, capture_output=True,
                          text=True, timeout=600, check=False,
                          env={**base, "HOME": str(cwd), **env})
    assert proc.returncode == 0, proc.stderr
    (kube,) = [c for c in json.loads(proc.stdout)["capabilities"] if c["name"] == "kubernetes"]
    return dict(kube)


@pytest.fixture
def api() -> Iterator[ApiServer]:
    server = ApiServer()
    yield server
    server.server.shutdown()


def test_no_kubeconfig_names_the_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    cap = check_kubernetes()
    assert (cap.available, cap.detail) == (False, "no KUBECONFIG and not in a cluster")
    kube = _kube(tmp_path, {})
    assert (kube["available"], kube["detail"]) == (False, "no KUBECONFIG and not in a cluster")


def test_available_once_a_restricted_pod_ran_and_nothing_is_left(project: Path,
                                                                  api: ApiServer) -> None:
    kube = _kube(project, {"KUBECONFIG": str(api.kubeconfig(project))})
    assert kube["available"] is True, kube
    assert "a restricted pod (python:3.11-slim) started in default" in kube["detail"]
    kinds = [o["kind"] for o in api.created]
    assert kinds == ["Secret", "NetworkPolicy", "Pod"], kinds
    pod = api.created[2]
    container = pod["spec"]["containers"][0]
    assert container["command"][:2] == ["python3", "-c"]
    assert container["image"] == "python:3.11-slim"
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert pod["spec"]["automountServiceAccountToken"] is False
    assert api.objects == {}  # Secret, NetworkPolicy and Pod deleted


def test_a_pod_that_fails_is_not_available_and_is_deleted(project: Path) -> None:
    api = ApiServer(phase="Failed", message="ErrImagePull: python:3.11-slim not found")
    try:
        kube = _kube(project, {"KUBECONFIG": str(api.kubeconfig(project))})
    finally:
        api.server.shutdown()
    assert kube["available"] is False, kube
    assert "a restricted pod did not run" in kube["detail"]
    assert "failed: ErrImagePull: python:3.11-slim not found" in kube["detail"]
    assert len(api.created) == 3 and api.objects == {}


def test_a_refused_pod_leaves_no_secret_or_network_policy(project: Path) -> None:
    """Pod Security admission says no: the Secret and NetworkPolicy made before go too."""
    api = ApiServer(refuse_pods=True)
    try:
        kube = _kube(project, {"KUBECONFIG": str(api.kubeconfig(project))})
    finally:
        api.server.shutdown()
    assert kube["available"] is False, kube
    assert "403 Forbidden" in kube["detail"] and "violates PodSecurity" in kube["detail"]
    assert [o["kind"] for o in api.created] == ["Secret", "NetworkPolicy"]
    assert api.objects == {}


def test_no_image_starts_no_pod(tmp_path: Path, api: ApiServer) -> None:
    kube = _kube(tmp_path, {"KUBECONFIG": str(api.kubeconfig(tmp_path))})
    assert kube["available"] is False, kube
    assert "no kernel image; set [isolation] image" in kube["detail"]
    assert api.created == []


def test_an_unreachable_api_server_is_named(project: Path) -> None:
    api = ApiServer()
    config = api.kubeconfig(project)
    api.server.shutdown()
    api.server.server_close()
    kube = _kube(project, {"KUBECONFIG": str(config)})
    assert kube["available"] is False, kube
    assert "a restricted pod did not run" in kube["detail"]
    assert "deleting its Secret, NetworkPolicy and Pod" in kube["detail"]
