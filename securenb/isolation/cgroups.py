"""A cgroup per sandbox, for callers running as root.

Linux does not enforce RLIMIT_NPROC for processes whose user is root in the
initial namespace, and a bwrap sandbox started by root maps its user to root
outside. So when Jupyter runs as root (common in containers and GPU servers)
the process limit, a hard memory cap and the CPU time over the whole sandbox
come from a cgroup instead: cgroup v2 (``pids.max``, ``memory.max``) or, on hybrid and v1
hosts, the v1 ``pids`` and ``memory`` controllers. The sandbox enters the
cgroup before bwrap starts (a one-line ``sh`` wrapper writes its own pid), so
nothing it forks escapes.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from securenb.isolation.errors import BackendUnavailableError
from securenb.isolation.limits import Limits

ROOT = Path("/sys/fs/cgroup")
GROUP = "securenb"
# move this shell into each cgroup (fail closed: never start the sandbox outside one), then exec
_ENTER = (
    'for f in "$@"; do case $f in --) shift; break;; esac; echo 0 > "$f" || exit 125; shift;'
    ' done; exec "$@"'
)
STALE_SECONDS = 300


@dataclass(frozen=True)
class Cgroup:
    """One sandbox's cgroup directories (one per v1 hierarchy, or one v2 dir)."""

    dirs: tuple[Path, ...]
    version: int

    @classmethod
    def create(cls, limits: Limits, root: Path = ROOT) -> Cgroup:
        """Make the cgroup and set its limits; an error names what is missing."""
        name = f"sandbox-{uuid.uuid4().hex[:12]}"
        _collect_stale(root)
        try:
            if (root / "cgroup.controllers").is_file():
                return cls._create_v2(root, name, limits)
            if (root / "pids" / "cgroup.procs").is_file():
                return cls._create_v1(root, name, limits)
        except OSError as exc:
            raise _unavailable(f"cannot create a cgroup under {root} ({exc})") from exc
        raise _unavailable(f"no cgroup v2 and no v1 pids controller under {root}")

    @classmethod
    def _create_v2(cls, root: Path, name: str, limits: Limits) -> Cgroup:
        enabled = (root / "cgroup.subtree_control").read_text().split()
        missing = [c for c in ("pids", "memory") if c not in enabled]
        if missing:
            (root / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in missing))
        parent = root / GROUP
        parent.mkdir(exist_ok=True)
        (parent / "cgroup.subtree_control").write_text("+pids +memory")
        group = parent / name
        group.mkdir()
        (group / "pids.max").write_text(str(limits.processes))
        (group / "memory.max").write_text(str(limits.memory_bytes))
        with contextlib.suppress(FileNotFoundError):
            (group / "memory.swap.max").write_text("0")
        return cls((group,), 2)

    @classmethod
    def _create_v1(cls, root: Path, name: str, limits: Limits) -> Cgroup:
        pids = root / "pids" / GROUP / name
        pids.mkdir(parents=True)
        (pids / "pids.max").write_text(str(limits.processes))
        dirs = [pids]
        memory_root = root / "memory"
        if (memory_root / "cgroup.procs").is_file():
            memory = memory_root / GROUP / name
            memory.mkdir(parents=True)
            (memory / "memory.limit_in_bytes").write_text(str(limits.memory_bytes))
            with contextlib.suppress(OSError):
                (memory / "memory.memsw.limit_in_bytes").write_text(str(limits.memory_bytes))
            dirs.append(memory)
        if (root / "cpuacct" / "cgroup.procs").is_file():  # CPU time of all its processes
            cpu = root / "cpuacct" / GROUP / name
            cpu.mkdir(parents=True)
            dirs.append(cpu)
        return cls(tuple(dirs), 1)

    def wrap(self, argv: list[str]) -> list[str]:
        """``argv`` started inside this cgroup (the shell moves itself, then execs)."""
        procs = [str(d / "cgroup.procs") for d in self.dirs]
        return ["/bin/sh", "-c", _ENTER, "sh", *procs, "--", *argv]

    def memory_exceeded(self) -> bool:
        """Whether the OOM killer acted in this sandbox (why it died)."""
        for d in self.dirs:
            for name, key in (("memory.events", "oom_kill"), ("memory.oom_control", "oom_kill")):
                with contextlib.suppress(OSError):
                    for line in (d / name).read_text().splitlines():
                        parts = line.split()
                        if len(parts) == 2 and parts[0] == key and int(parts[1]) > 0:
                            return True
        return False

    def cpu_seconds(self) -> float | None:
        """CPU time used by every process the sandbox ever ran (None: not accounted)."""
        for d in self.dirs:
            with contextlib.suppress(OSError, ValueError):
                if self.version == 2:
                    for line in (d / "cpu.stat").read_text().splitlines():
                        key, _, value = line.partition(" ")
                        if key == "usage_usec":
                            return int(value) / 1e6
                elif (d / "cpuacct.usage").is_file():
                    return int((d / "cpuacct.usage").read_text()) / 1e9
        return None

    def remove(self) -> None:
        """Remove the directories once the sandbox is gone (kills stragglers first)."""
        for d in self.dirs:
            with contextlib.suppress(OSError):
                kill = d / "cgroup.kill"
                if kill.exists():
                    kill.write_text("1")
            with contextlib.suppress(OSError):
                d.rmdir()


def _collect_stale(root: Path) -> None:
    """Remove empty sandbox cgroups left by parents that were killed before cleaning up."""
    now = time.time()
    for parent in (root / GROUP, *(root / c / GROUP for c in ("pids", "memory", "cpuacct"))):
        for group in parent.glob("sandbox-*") if parent.is_dir() else ():
            with contextlib.suppress(OSError):
                if now - group.stat().st_mtime > STALE_SECONDS and not (
                        group / "cgroup.procs").read_text().strip():
                    group.rmdir()


def needed() -> bool:
    """True when rlimits alone cannot bound the sandbox's processes (running as root)."""
    return os.geteuid() == 0


def _unavailable(reason: str) -> BackendUnavailableError:
    return BackendUnavailableError(
        "bwrap",
        f"running as root, the process and memory limits need a cgroup: {reason}",
        "run Jupyter as a regular user, or give it a writable cgroup (v2, or v1 pids+memory)",
    )
