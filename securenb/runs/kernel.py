"""The sandboxed kernel of a run: a securenb provisioner, chosen by backend.

The whole kernel runs in the sandbox through the isolated kernelspecs'
provisioners (securenb.isolation); the backend comes from ``--isolation``,
from ``-k securenb-<backend>``, else from the policy. ``unsafe-local`` is used
only when asked for by name, and the run records say so.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from jupyter_client.kernelspec import KernelSpec, KernelSpecManager, NoSuchKernel
from jupyter_client.manager import AsyncKernelManager
from jupyter_client.provisioning.factory import KernelProvisionerFactory

from securenb.isolation.errors import IsolationError
from securenb.isolation.kernelspecs import BACKENDS, PREFIX, kernel_json, kernel_name
from securenb.isolation.provisioner import SandboxProvisioner
from securenb.isolation.spec import SandboxSpec


def backend_for(kernel: str | None, isolation: str | None, policy_backend: str) -> str:
    """The sandbox backend of a run; a securenb kernel name and ``--isolation`` must agree."""
    named = kernel[len(PREFIX):] if kernel and kernel.startswith(PREFIX) else None
    if named is not None and named not in BACKENDS:
        raise IsolationError(f"kernel {kernel!r}: no such securenb backend; "
                             f"choose one of {', '.join(BACKENDS)}")
    if isolation is not None and isolation not in BACKENDS:
        raise IsolationError(f"--isolation {isolation!r}: choose one of {', '.join(BACKENDS)}")
    if named and isolation and named != isolation:
        raise IsolationError(f"kernel {kernel!r} and --isolation {isolation} disagree")
    return isolation or named or policy_backend


def check_output_dir(output_dir: str) -> None:
    """The kernel's writable folder: below the run's folder, never the folder itself (``.``
    would make the whole project writable) nor outside it."""
    parts = Path(output_dir).parts
    if Path(output_dir).is_absolute() or ".." in parts or not parts:
        raise IsolationError(f"--output-dir {output_dir!r}: a folder inside the run's folder, "
                             "not the folder itself")


def kernel_spec(backend: str) -> tuple[str, KernelSpec]:
    """The installed ``securenb-<backend>`` kernelspec (its Python), else a fresh one."""
    name = kernel_name(backend)
    try:
        spec = KernelSpecManager().get_kernel_spec(name)
        if spec.metadata.get("securenb", {}).get("backend") == backend:
            return name, spec
    except NoSuchKernel:
        pass
    return name, KernelSpec(**kernel_json(backend))


def sandbox_manager(backend: str, cwd: Path, *, gpus: int | str | None,
                    secret_names: tuple[str, ...], secret_env: dict[str, str],
                    output_dir: str | None = None) -> tuple[AsyncKernelManager, SandboxSpec]:
    """A kernel manager whose provisioner runs the kernel in ``backend``'s sandbox.

    The spec is the one the kernelspec would build (policy limits, the folder
    read-only, ``outputs/`` writable), with the run's GPUs and secret names;
    ``output_dir`` (relative to ``cwd``) replaces ``outputs/``: runs side by side
    each get their own, so each run's artifacts are its own.
    """
    name, spec = kernel_spec(backend)
    km = AsyncKernelManager(kernel_name=name)
    km._kernel_spec = spec
    km.kernel_id = f"securenb-run-{os.urandom(6).hex()}"
    provisioner = KernelProvisionerFactory.instance().create_provisioner_instance(
        km.kernel_id, spec, parent=km)
    if not isinstance(provisioner, SandboxProvisioner):
        raise IsolationError(f"kernel {name!r} is not started by a securenb provisioner")
    if output_dir is not None:
        check_output_dir(output_dir)
        provisioner.output_dir = output_dir
    sandbox = provisioner._spec_from_config(cwd)
    sandbox = dataclasses.replace(sandbox, secret_names=secret_names,
                                  gpus=sandbox.gpus if gpus is None else gpus)
    provisioner.sandbox_spec = sandbox
    provisioner.secret_env = secret_env
    provisioner.records_runs = False  # the run is recorded once, by securenb.runs, with its cells
    km.provisioner = provisioner
    return km, sandbox


