"""The read-only host environment a sandbox sees: system dirs, one Python, GPUs.

Everything not listed here is absent in the sandbox (bwrap's root is an empty
tmpfs; the container image is empty). In particular the home folder, /root,
/etc/shadow, SSH host keys, other projects and the workspace's ``.securenb/``
are never mounted. ``/etc`` is an allowlist because a sandbox mapped to the
caller's uid would own (and could read) the caller's private files there.
"""

from __future__ import annotations

import glob
import importlib.metadata
import os
import sys
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any

import securenb
from securenb.core.canonical import canonical_json, sha256_hex
from securenb.isolation.errors import IsolationError

SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
ETC_ALLOWLIST = (
    "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime",
    "/etc/nsswitch.conf", "/etc/hosts", "/etc/ssl/certs", "/etc/ca-certificates",
    "/etc/alternatives", "/etc/os-release", "/etc/mime.types", "/etc/protocols",
    "/etc/services", "/etc/timezone", "/etc/fonts", "/etc/matplotlibrc",
)
GPU_CONTROL_NODES = (
    "/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools", "/dev/nvidia-modeset",
)


@dataclass(frozen=True)
class PythonEnv:
    """Where one Python environment lives; bound read-only at the same paths."""

    executable: str
    prefix: str
    base_prefix: str
    securenb_dir: str

    @classmethod
    def current(cls) -> PythonEnv:
        """The environment of this interpreter (what ``%%secure_train`` runs cells with)."""
        return cls(
            executable=str(Path(sys.prefix) / "bin" / "python"),
            prefix=sys.prefix,
            base_prefix=sys.base_prefix,
            securenb_dir=str(Path(securenb.__file__).resolve().parent),
        )

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PythonEnv:
        try:
            return cls(**{k: str(data[k]) for k in ("executable", "prefix", "base_prefix",
                                                    "securenb_dir")})
        except KeyError as exc:
            raise IsolationError(f"kernelspec python_env lacks {exc.args[0]!r}") from None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def read_only_paths(self) -> list[str]:
        """Prefixes plus securenb itself when it lives outside them (editable install)."""
        paths: list[str] = []
        for candidate in (self.base_prefix, self.prefix):
            if not _under_any(candidate, [*SYSTEM_DIRS, *paths]):
                paths.append(candidate)
        if not _under_any(self.securenb_dir, [*SYSTEM_DIRS, *paths]):
            paths.append(self.securenb_dir)
        return paths

    def pythonpath(self) -> str:
        """PYTHONPATH that makes securenb importable when it sits outside the prefix."""
        if _under_any(self.securenb_dir, [self.prefix, self.base_prefix, *SYSTEM_DIRS]):
            return ""
        return str(Path(self.securenb_dir).parent)


def _under_any(path: str, roots: list[str]) -> bool:
    p = Path(path)
    return any(p == Path(r) or Path(r) in p.parents for r in roots)


def system_entries() -> list[tuple[str, str | None]]:
    """(path, symlink target or None) for the top-level system dirs present here."""
    out: list[tuple[str, str | None]] = []
    for path in SYSTEM_DIRS:
        if os.path.islink(path):
            out.append((path, os.readlink(path)))
        elif os.path.isdir(path):
            out.append((path, None))
    return out


def etc_entries() -> list[str]:
    return [p for p in ETC_ALLOWLIST if os.path.exists(p)]


def gpu_devices(gpus: int | str) -> list[str]:
    """Device nodes for ``gpus`` (a count or "all"); an error if there are not enough."""
    if gpus in (0, "0"):
        return []
    cards = sorted(glob.glob("/dev/nvidia[0-9]*"), key=lambda p: int(p.removeprefix("/dev/nvidia")))
    wanted = len(cards) if gpus == "all" else int(gpus)
    if not cards or wanted > len(cards):
        raise IsolationError(
            f"--gpus {gpus}: found {len(cards)} NVIDIA GPU device(s) in /dev; "
            "install the NVIDIA driver or ask for fewer GPUs"
        )
    extra = [p for p in GPU_CONTROL_NODES if os.path.exists(p)]
    extra += sorted(glob.glob("/dev/nvidia-caps/*"))
    return cards[:wanted] + extra


def cuda_visible_devices(gpus: int | str) -> str:
    """CUDA_VISIBLE_DEVICES inside the sandbox ("" hides every GPU)."""
    if gpus in (0, "0"):
        return ""
    count = len(glob.glob("/dev/nvidia[0-9]*")) if gpus == "all" else int(gpus)
    return ",".join(str(i) for i in range(count))


@cache
def packages_digest(prefix: str) -> tuple[str, int]:
    """SHA-256 over the sorted (name, version) of the packages installed in ``prefix``."""
    site = [p for p in sys.path if p.startswith(prefix)] or [prefix]
    dists = sorted(
        {(d.metadata["Name"] or "", d.version) for d in importlib.metadata.distributions(path=site)}
    )
    return sha256_hex(canonical_json([list(d) for d in dists])), len(dists)

