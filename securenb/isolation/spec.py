"""What one sandbox is: backend, limits, mounts, environment. Built once, then launched.

A spec holds no secret values, only their names; values travel separately to
the launcher and never into a record (see ``secrets``).
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from securenb.core.locate import DIR_NAME
from securenb.core.policy import IsolationPolicy
from securenb.isolation.errors import IsolationError
from securenb.isolation.hostenv import SYSTEM_DIRS, PythonEnv
from securenb.isolation.limits import Limits, parse_size

BACKENDS = ("bwrap", "podman", "docker", "kubernetes", "unsafe-local")
SANDBOX_UID = 1000
# root callers: each sandbox runs as its own host uid from this range (never host root)
DEDICATED_UID_BASE = 0x7E000000
DEDICATED_UID_COUNT = 1 << 24
SANDBOX_HOME = "/home/sandbox"
# where earlier outputs are visible (read-only) while this run's output folder starts empty
SANDBOX_PREVIOUS = "/run/securenb/previous-outputs"
# private tmpfs mounts inside the sandbox, not host paths
SANDBOX_TMPFS = ("/tmp", "/dev/shm", SANDBOX_HOME)  # noqa: S108


MOUNT_MODES = ("ro", "rw", "hidden")


@dataclass(frozen=True)
class Mount:
    """A host path at the same absolute path in the sandbox: read-only, writable,
    or hidden (an empty read-only folder over a part of a read-only mount)."""

    path: str
    mode: str = "ro"

    def __post_init__(self) -> None:
        if self.mode not in MOUNT_MODES:
            raise IsolationError(f"mount mode {self.mode!r}: expected one of {MOUNT_MODES}")
        if not self.path.startswith("/") or any(c in self.path for c in ":\0\n"):
            raise IsolationError(f"{self.path!r}: not a mountable absolute path")

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "mode": self.mode}


@dataclass(frozen=True)
class SandboxSpec:
    """Everything a backend needs to start one isolated kernel."""

    backend: str
    limits: Limits
    python: PythonEnv
    workdir: str
    mounts: tuple[Mount, ...] = ()
    output_dir: str | None = None
    gpus: int | str = 0
    image: str | None = None
    network: str = "none"
    env: tuple[tuple[str, str], ...] = ()
    secret_names: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise IsolationError(
                f"unknown sandbox backend {self.backend!r}; choose one of {', '.join(BACKENDS)}"
            )
        if self.network != "none":
            raise IsolationError(f"network {self.network!r} is not allowed; only 'none' is")

    @property
    def unsafe(self) -> bool:
        return self.backend == "unsafe-local"

    def to_json(self) -> dict[str, Any]:
        """The record form: limits, mounts, GPUs, secret names (never values)."""
        return {
            "backend": self.backend,
            "unsafe": self.unsafe,
            "limits": self.limits.to_json(),
            "python": self.python.executable,
            "workdir": self.workdir,
            "mounts": [m.to_json() for m in self.mounts],
            "output_dir": self.output_dir,
            "gpus": self.gpus,
            "image": self.image,
            "network": self.network,
            "env": sorted(k for k, _ in self.env),
            "secrets": list(self.secret_names),
        }


def limits_from(
    policy: IsolationPolicy, memory: str | None = None, timeout: int | None = None
) -> Limits:
    """Policy limits, with the per-run overrides a user may give."""
    return Limits(
        memory_bytes=parse_size(memory or policy.memory),
        cpu_seconds=policy.cpu_seconds,
        processes=policy.processes,
        timeout_seconds=timeout or policy.timeout,
    )


def build_spec(
    policy: IsolationPolicy,
    *,
    workdir: Path,
    backend: str | None = None,
    python: PythonEnv | None = None,
    inputs: tuple[Path, ...] = (),
    hidden: tuple[Path, ...] = (),
    output_dir: Path | None = None,
    gpus: int | str | None = None,
    image: str | None = None,
    memory: str | None = None,
    timeout: int | None = None,
    network: str = "none",
    env: tuple[tuple[str, str], ...] = (),
    secret_names: tuple[str, ...] = (),
) -> SandboxSpec:
    """A spec from policy plus explicit options, every path checked (see ``check_mount``)."""
    python = python or PythonEnv.current()
    concealed = tuple(p.resolve() for p in hidden if p.exists())
    mounts = [Mount(check_mount(p, "ro", python, concealed)) for p in inputs]
    mounts += [Mount(str(p), "hidden") for p in concealed]
    out = None
    if output_dir is not None:
        output_dir.mkdir(parents=True, exist_ok=True)
        out = check_mount(output_dir, "rw", python)
        mounts.append(Mount(out, "rw"))
    return SandboxSpec(
        backend=backend or policy.backend,
        limits=limits_from(policy, memory, timeout),
        python=python,
        workdir=str(workdir.resolve()),
        mounts=tuple(mounts),
        output_dir=out,
        gpus=policy.gpus if gpus is None else gpus,
        image=image or policy.image,
        network=network,
        env=env,
        secret_names=secret_names,
    )


def _private_places(home: Path) -> list[Path]:
    """Never mounted, whatever is asked: the home folder's hidden folders (SSH, cloud and
    tool credentials, ``~/.config``, ``~/.ipython`` startup files), Jupyter's config, data
    and runtime folders, and the system's configuration and kernel interfaces."""
    from jupyter_core import paths

    places = [Path(p) for p in ("/etc", "/proc", "/sys", "/dev", "/boot", "/run")]
    with contextlib.suppress(OSError):
        places += [e for e in home.iterdir() if e.name.startswith(".")]
    places += [Path(p) for p in (paths.jupyter_config_dir(), paths.jupyter_data_dir(),
                                 paths.jupyter_runtime_dir(), *paths.jupyter_config_path())]
    places.append(Path(os.environ.get("IPYTHONDIR") or home / ".ipython"))
    return [p.resolve() for p in places if str(p).startswith("/")]


@cache
def _import_paths(entries: tuple[str, ...]) -> list[Path]:
    return [Path(p).resolve() for p in entries if p]


def check_mount(path: Path, mode: str, python: PythonEnv,
                hidden: tuple[Path, ...] = ()) -> str:
    """Resolve ``path`` and refuse what would break isolation if mounted.

    Nothing may expose the whole file system or the home folder. A writable
    folder must not contain the workspace records (``.securenb``), the Python
    environment, the system or anything on ``sys.path``: the sandbox could
    plant code the parent imports, or rewrite the records that vouch for it.
    """
    if not path.exists():
        raise IsolationError(f"{path}: does not exist (declared sandbox input or output)")
    resolved = path.resolve()
    home = Path(os.path.expanduser("~")).resolve()
    if resolved == Path("/") or resolved in (home, *home.parents):
        raise IsolationError(
            f"{path}: refusing to mount the home folder, the root or a parent of them"
        )
    for private in _private_places(home):
        if resolved == private or private in resolved.parents:
            raise IsolationError(f"{path}: refusing to mount {private} or anything in it "
                                 "(configuration, credentials, records or system files)")
    if resolved.name == ".env" or DIR_NAME in resolved.parts:
        raise IsolationError(f"{path}: refusing to mount the workspace records or a .env file")
    if mode == "ro" and resolved.is_dir():
        for name in (DIR_NAME, ".env"):
            if (resolved / name).exists() and (resolved / name) not in hidden:
                raise IsolationError(
                    f"{path}: contains {resolved / name} (records or secrets); declare the "
                    "folders the cell needs instead")
    if mode == "rw":
        inside_forbidden = [Path(p) for p in (*python.read_only_paths(), *SYSTEM_DIRS, "/etc")]
        inside_forbidden += [d / DIR_NAME for d in resolved.parents]
        containing_forbidden = [*_import_paths(tuple(sys.path)), *inside_forbidden]
        if (resolved / DIR_NAME).exists():
            containing_forbidden.append(resolved / DIR_NAME)
        for item in containing_forbidden:
            if item == resolved or resolved in item.parents:
                raise IsolationError(f"{path}: a sandbox output folder must not contain {item}")
        for item in inside_forbidden:
            if item in resolved.parents:
                raise IsolationError(f"{path}: a sandbox output folder must not be inside {item}")
    return str(resolved)
