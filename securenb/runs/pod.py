"""The runner's side of a run inside a Kubernetes Job pod (see ``securenb.runs.k8s``).

The pod has two containers: ``kernel`` (the provisioner's restricted kernel
container: ipykernel, no keys, the project read-only, its output folder
writable) and ``runner`` (``securenb run --pod-kernel DIR``: papermill, the
keys, the audit log). The runner writes the connection file into a folder the
two share; the kernel container waits for it and starts ipykernel on the
pod's loopback; the runner attaches to it and, at the end, shuts it down with
a ``shutdown_request`` (a container cannot signal another). The kernel has
ended when its heartbeat port closes: only then are the outputs hashed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from pathlib import Path
from typing import Any

from jupyter_client.connect import KernelConnectionInfo
from jupyter_client.manager import AsyncKernelManager
from jupyter_client.provisioning.provisioner_base import KernelProvisionerBase

from securenb.core.locate import DIR_NAME
from securenb.isolation import kube
from securenb.isolation.errors import IsolationError
from securenb.isolation.kernelspecs import kernel_json, kernel_name
from securenb.isolation.spec import SandboxSpec, build_spec

CONNECTION_FILE = "kernel.json"
LOOPBACK = "127.0.0.1"
HIDDEN = (DIR_NAME, ".git", ".env")  # hidden from the kernel, as the provisioners hide them
WAIT_SECONDS = 600  # the kernel container gives up if no runner attaches by then

# The kernel container's program: wait for the runner's connection file, then become
# ipykernel (argv[1]: the file, argv[2]: seconds to wait).
KERNEL_PROGRAM = (
    "import os, sys, time\n"
    "end = time.monotonic() + float(sys.argv[2])\n"
    "while not os.path.exists(sys.argv[1]):\n"
    "    if time.monotonic() > end:\n"
    "        sys.exit('no runner attached: ' + sys.argv[1] + ' never appeared')\n"
    "    time.sleep(0.2)\n"
    "os.execv(sys.executable, [sys.executable, '-m', 'ipykernel_launcher', '-f', sys.argv[1]])\n"
)


def kernel_command(connection_dir: str = kube.CONNECTION_DIR) -> list[str]:
    """What the kernel container runs (``python3``: the image's interpreter)."""
    return ["python3", "-c", KERNEL_PROGRAM, f"{connection_dir}/{CONNECTION_FILE}",
            str(WAIT_SECONDS)]


class AttachedProvisioner(KernelProvisionerBase):
    """A kernel in a sibling container: started by the connection file, ended by message."""

    connection_dir: Path = Path(kube.CONNECTION_DIR)
    _hb_port: int = 0
    _launched: bool = False
    _seen: bool = False
    _exit: int | None = None

    @property
    def has_process(self) -> bool:
        return self._launched and self._exit is None

    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        km = self.parent
        assert km is not None
        km.transport, km.ip = "tcp", LOOPBACK
        for key, port in kube.ports().items():
            setattr(km, key, port)
        self._hb_port = km.hb_port
        final = self.connection_dir / CONNECTION_FILE
        km.connection_file = str(self.connection_dir / f".{CONNECTION_FILE}.tmp")
        km.write_connection_file()
        os.replace(km.connection_file, final)  # the kernel container never reads half a file
        km.connection_file = str(final)
        self.connection_info = km.get_connection_info()
        kwargs = await super().pre_launch(**kwargs)
        kwargs["cmd"] = []
        return kwargs

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> KernelConnectionInfo:
        self._launched = True
        return self.connection_info

    def _listening(self) -> bool:
        try:
            with socket.create_connection((LOOPBACK, self._hb_port), timeout=1):
                return True
        except OSError:
            return False

    async def poll(self) -> int | None:
        """Running until the heartbeat port, once seen open, closes."""
        if self._exit is not None:
            return self._exit
        if await asyncio.to_thread(self._listening):
            self._seen = True
            return None
        if self._seen:
            self._exit = 0
            return 0
        return None  # still starting (the container waits for the connection file)

    async def wait(self) -> int | None:
        while (code := await self.poll()) is None:
            await asyncio.sleep(0.1)
        return code

    async def send_signal(self, signum: int) -> None:
        """Interrupts travel as messages (``interrupt_mode: message``); nothing else can."""

    async def kill(self, restart: bool = False) -> None:
        """Ask the kernel to end (again: a graceful shutdown already did) and wait, bounded."""
        if self.parent is not None:
            with contextlib.suppress(Exception):
                await self.parent._async_request_shutdown(restart)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and await self.poll() is None:
            await asyncio.sleep(0.1)
        self._exit = -9 if self._exit is None else self._exit

    async def terminate(self, restart: bool = False) -> None:
        await self.kill(restart)

    async def cleanup(self, restart: bool = False) -> None:
        if self.parent is not None and self.parent.connection_file:
            Path(self.parent.connection_file).unlink(missing_ok=True)


def attached_manager(connection_dir: Path, image: str, cwd: Path, policy: Any, *,
                     gpus: int | str | None, secret_names: tuple[str, ...],
                     output_dir: str | None) -> tuple[AsyncKernelManager, SandboxSpec]:
    """The kernel manager of a run in a Job pod, and the sandbox it records: the
    restricted kernel container (backend ``kubernetes``, ``image``, the policy's limits,
    the project read-only, ``output_dir`` writable)."""
    if not connection_dir.is_dir():
        raise IsolationError(f"--pod-kernel {connection_dir}: not a folder (the folder the "
                             "runner and kernel containers share)")
    if output_dir is not None and (Path(output_dir).is_absolute()
                                   or ".." in Path(output_dir).parts):
        raise IsolationError(f"--output-dir {output_dir}: a folder inside the run's folder")
    sandbox = build_spec(policy, workdir=cwd, backend="kubernetes", image=image, gpus=gpus,
                         inputs=(cwd,), hidden=tuple(cwd / n for n in HIDDEN),
                         output_dir=cwd / (output_dir or "outputs"), secret_names=secret_names)
    kube.pod_manifest(sandbox, "check", "default")  # the same checks as the Job's rendering
    from jupyter_client.kernelspec import KernelSpec

    name = kernel_name("kubernetes")
    spec = KernelSpec(**kernel_json("kubernetes", image=image))
    km = AsyncKernelManager(kernel_name=name)
    km._kernel_spec = spec
    km.kernel_id = f"securenb-run-{os.urandom(6).hex()}"
    provisioner = AttachedProvisioner(kernel_id=km.kernel_id, kernel_spec=spec, parent=km)
    provisioner.connection_dir = connection_dir
    km.provisioner = provisioner
    return km, sandbox
