"""Isolated kernelspecs: "Python 3 (isolated, bwrap)" etc. for JupyterLab and papermill -k.

Each spec runs this environment's ipykernel through a securenb provisioner
(entry point group ``jupyter_client.kernel_provisioners``). The notebook's
folder is mounted read-only (without ``.securenb`` and ``.git``), ``outputs/``
beside it is writable, and limits come from the workspace policy.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

from securenb.isolation.errors import IsolationError
from securenb.isolation.hostenv import PythonEnv
from securenb.isolation.provisioner import PROVISIONERS

PREFIX = "securenb-"
ENTRY_POINT_GROUP = "jupyter_client.kernel_provisioners"
# whole-notebook kernels also run as Kubernetes pods (cell runs need a shared folder)
BACKENDS = (*PROVISIONERS, "kubernetes")


def kernel_name(backend: str) -> str:
    return f"{PREFIX}{backend}"


def provisioner_name(backend: str) -> str:
    return f"{PREFIX}{backend}"


def kernel_json(
    backend: str,
    python: PythonEnv | None = None,
    *,
    image: str | None = None,
    namespace: str | None = None,
) -> dict[str, Any]:
    """The kernel.json of the isolated kernel for ``backend``.

    A Kubernetes kernel runs the pod's own Python: it needs ``image`` (one with
    ipykernel) and takes ``namespace``; the other backends run this environment's.
    """
    if backend not in BACKENDS:
        raise IsolationError(f"no isolated kernel for backend {backend!r}; "
                             f"choose one of {', '.join(BACKENDS)}")
    if backend == "kubernetes":
        if not image:
            raise IsolationError("a Kubernetes kernel needs --image: an image with ipykernel")
        config: dict[str, Any] = {"image": image, "namespace": namespace or "default"}
        argv = ["python3", "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    else:
        if image or namespace:
            raise IsolationError("--image and --namespace are for --backend kubernetes")
        python = python or PythonEnv.current()
        config = {"python_env": python.to_json()}
        argv = [python.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    label = "UNSAFE, not isolated" if backend == "unsafe-local" else f"isolated, {backend}"
    return {
        "argv": argv,
        "display_name": f"Python 3 ({label})",
        "language": "python",
        "interrupt_mode": "message",
        "metadata": {
            "debugger": False,
            "kernel_provisioner": {"provisioner_name": provisioner_name(backend), "config": config},
            "securenb": {"backend": backend, "isolated": backend != "unsafe-local"},
        },
    }


@dataclass(frozen=True)
class InstalledKernel:
    """A securenb kernelspec; ``usable`` is False when its provisioner is not registered."""

    name: str
    display_name: str
    backend: str
    path: str
    usable: bool

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "display_name": self.display_name, "backend": self.backend,
                "path": self.path, "usable": self.usable}


def provisioner_registered(backend: str) -> bool:
    return bool(entry_points(group=ENTRY_POINT_GROUP, name=provisioner_name(backend)))


def install(
    backend: str,
    *,
    user: bool = False,
    prefix: str | None = None,
    image: str | None = None,
    namespace: str | None = None,
) -> InstalledKernel:
    """Write the kernelspec where Jupyter finds it (sys.prefix, ``--user`` or a prefix)."""
    spec = kernel_json(backend, image=image, namespace=namespace)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "kernel.json").write_text(json.dumps(spec, indent=1) + "\n")
        path = KernelSpecManager().install_kernel_spec(
            tmp, kernel_name(backend), user=user, prefix=prefix if not user else None,
        )
    return InstalledKernel(kernel_name(backend), spec["display_name"], backend, path,
                           provisioner_registered(backend))


def installed(manager: KernelSpecManager | None = None) -> list[InstalledKernel]:
    """Every securenb kernelspec on Jupyter's path (also those it would hide as unusable)."""
    manager = manager or KernelSpecManager()
    out = []
    for name, folder in sorted(manager.find_kernel_specs().items()):
        try:
            spec = json.loads((Path(folder) / "kernel.json").read_text())
        except (OSError, ValueError):
            continue
        meta = spec.get("metadata", {}).get("securenb")
        if isinstance(meta, dict) and meta.get("backend") in BACKENDS:
            out.append(InstalledKernel(name, str(spec.get("display_name", name)),
                                       meta["backend"], folder,
                                       provisioner_registered(meta["backend"])))
    return out


def remove(name: str, manager: KernelSpecManager | None = None) -> str:
    """Remove a securenb kernelspec; refuses kernels that are not ours."""
    manager = manager or KernelSpecManager()
    if name not in {k.name for k in installed(manager)}:
        raise IsolationError(f"no securenb kernelspec named {name!r} (see `securenb kernels list`)")
    try:
        return str(manager.remove_kernel_spec(name))
    except NoSuchKernel:
        raise IsolationError(f"no kernelspec named {name!r}") from None
