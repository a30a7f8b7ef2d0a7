"""Kernels of a root server start without the capabilities that read the server's memory.

The server holds the unlocked keys and is made non-dumpable (securenb.core.vault),
which stops a kernel of the same user from reading its memory, unless that kernel
has ``CAP_SYS_PTRACE``: every process of root has. So in a root server (CI,
containers, ``--allow-root``) the extension makes the kernel manager start each
plain kernel (jupyter_client's local provisioner) through securenb.server.drop_caps,
which drops that capability and its siblings for good before the kernel runs.
Isolated kernels start in their sandbox, which is never root (securenb.isolation).
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from jupyter_client.provisioning.local_provisioner import LocalProvisioner
from jupyter_server.services.kernels.kernelmanager import ServerKernelManager

from securenb.server import drop_caps

CLASS = f"{__name__}.UnprivilegedKernelManager"


def launcher() -> list[str]:
    """The command prefix that drops the capabilities (the script runs by its path)."""
    return [sys.executable, "-I", drop_caps.__file__, "--"]


class UnprivilegedKernelManager(ServerKernelManager):
    """jupyter_server's kernel manager, starting local kernels without ``drop_caps.DROPPED``."""

    async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
        if type(self.provisioner) is LocalProvisioner:  # sandboxes drop everything themselves
            kernel_cmd = [*launcher(), *kernel_cmd]
        await super()._async_launch_kernel(kernel_cmd, **kw)


def install(kernel_manager: Any, log: logging.Logger) -> None:
    """In a root server, start kernels through ``UnprivilegedKernelManager``; a kernel
    manager class configured otherwise is kept, with a warning."""
    if os.geteuid() != 0 or kernel_manager is None:
        return
    current = getattr(kernel_manager, "kernel_manager_class", None)
    if current == CLASS:
        return
    if current != f"{ServerKernelManager.__module__}.{ServerKernelManager.__name__}":
        log.warning("securenb: root server with kernel manager class %s: its kernels keep "
                    "CAP_SYS_PTRACE and can read the keys in this server's memory", current)
        return
    kernel_manager.kernel_manager_class = CLASS
    log.info("securenb: root server: kernels start without %s", ", ".join(drop_caps.DROPPED))
