"""What sandboxes and GPUs this machine offers, each checked for real.

A sandbox counts as available only if it starts a process here, not merely if
its binary is on PATH: a bwrap without user namespaces or a podman without a
working cgroup setup would otherwise be reported usable and fail later.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

INSTALL_HINTS = {
    "bwrap": "apt-get install bubblewrap",
    "podman": "apt-get install podman",
    "docker": "install Docker Engine, or point DOCKER_HOST at `podman system service`",
    "kubernetes": "pip install kubernetes and set KUBECONFIG (or run in a cluster)",
    "gpu": "install the NVIDIA driver (nvidia-smi) and the container toolkit for containers",
}


@dataclass(frozen=True)
class Capability:
    """One backend: whether it works here, its version, and why not / how to get it."""

    name: str
    available: bool
    version: str
    detail: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _run(argv: list[str], timeout: float = 10.0) -> tuple[int, str]:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 127, str(exc)
    return proc.returncode, (proc.stdout + proc.stderr).strip()


def check_bwrap() -> Capability:
    exe = shutil.which("bwrap")
    if exe is None:
        return Capability("bwrap", False, "", f"not installed: {INSTALL_HINTS['bwrap']}")
    _, version = _run([exe, "--version"])
    code, out = _run(
        [
            exe,
            "--unshare-all",
            "--die-with-parent",
            "--ro-bind",
            "/",
            "/",
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "true",
        ]
    )
    if code != 0:
        return Capability("bwrap", False, version, f"installed but cannot start a sandbox: {out}")
    return Capability("bwrap", True, version, "starts an unprivileged sandbox")


def check_podman() -> Capability:
    exe = shutil.which("podman")
    if exe is None:
        return Capability("podman", False, "", f"not installed: {INSTALL_HINTS['podman']}")
    _, version = _run([exe, "--version"])
    if container_init() is None:
        return Capability("podman", False, version, "installed, but catatonit (the container "
                          "init that `podman run --init` needs) is missing: apt-get install "
                          "catatonit")
    return Capability("podman", True, version, "installed (containers started per run)")


INIT_PATHS = ("/usr/libexec/podman/catatonit", "/usr/lib/podman/catatonit")


def container_init() -> str | None:
    """Where podman finds its ``--init`` binary (catatonit), if anywhere."""
    found = shutil.which("catatonit")
    return found or next((p for p in INIT_PATHS if os.access(p, os.X_OK)), None)


def check_docker() -> Capability:
    exe = shutil.which("docker")
    if exe is None:
        return Capability("docker", False, "", f"not installed: {INSTALL_HINTS['docker']}")
    code, out = _run([exe, "version", "--format", "{{.Server.Version}}"])
    if code != 0:
        return Capability("docker", False, "", f"client only, no engine reachable: {out[:200]}")
    return Capability("docker", True, out, "engine reachable")


def check_kubernetes() -> Capability:
    try:
        import kubernetes  # type: ignore[import-not-found,unused-ignore]  # noqa: F401
    except ImportError:
        return Capability("kubernetes", False, "", f"client missing: {INSTALL_HINTS['kubernetes']}")
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        return Capability("kubernetes", True, "", "in-cluster configuration")
    config = os.environ.get("KUBECONFIG", str(Path.home() / ".kube" / "config"))
    if any(Path(p).is_file() for p in config.split(os.pathsep)):
        return Capability("kubernetes", True, "", f"kubeconfig {config}")
    return Capability("kubernetes", False, "", "no KUBECONFIG and not in a cluster")


def check_gpus() -> Capability:
    devices = sorted(glob.glob("/dev/nvidia[0-9]*"))
    exe = shutil.which("nvidia-smi")
    if exe:
        code, out = _run([exe, "-L"])
        if code == 0 and out:
            return Capability("gpu", True, "", out)
    if devices:
        return Capability("gpu", True, "", f"devices {' '.join(devices)} (no nvidia-smi)")
    return Capability("gpu", False, "", f"no NVIDIA GPU found: {INSTALL_HINTS['gpu']}")


def detect_all() -> list[Capability]:
    """Every backend and the GPUs, in the order `securenb doctor` shows them."""
    return [check_bwrap(), check_podman(), check_docker(), check_kubernetes(), check_gpus()]
