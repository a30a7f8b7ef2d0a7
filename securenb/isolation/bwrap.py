"""bubblewrap command lines: the default sandbox on Linux (no daemon, ~tens of ms).

The sandbox's root is an empty tmpfs, remounted read-only at the end; only the
system dirs, an allowlist of /etc, one Python environment, the declared inputs
(read-only), the output folder and the IPC folder (read-write) exist in it. It
gets every namespace (no network at all), no capabilities, no further user
namespaces, a new session (no TTY injection), a seccomp filter, rlimits (set
by ``prlimit`` inside, so the process count is per sandbox) and, when the
caller is root, a cgroup. Options travel through a memfd (``--args``), so
secret values never appear in a process list.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from securenb.isolation import cgroups, hostenv, seccomp
from securenb.isolation.errors import BackendUnavailableError
from securenb.isolation.limits import Limits
from securenb.isolation.runtime import RuntimeDir
from securenb.isolation.spec import SANDBOX_HOME, SANDBOX_TMPFS, SANDBOX_UID, Mount, SandboxSpec

CPU_GRACE = 5  # seconds between SIGXCPU (named as the cause) and SIGKILL
INSTALL_HINT = "install it: apt-get install bubblewrap (Debian/Ubuntu), dnf install bubblewrap"


@dataclass
class Launch:
    """A ready command: argv plus the fds it reads (options, seccomp) and its cgroup."""

    argv: list[str]
    pass_fds: tuple[int, ...]
    cgroup: cgroups.Cgroup | None

    def close_fds(self) -> None:
        for fd in self.pass_fds:
            os.close(fd)


def executable() -> str:
    exe = shutil.which("bwrap")
    if exe is None:
        raise BackendUnavailableError("bwrap", "the bwrap binary is not on PATH", INSTALL_HINT)
    if shutil.which("prlimit") is None:
        raise BackendUnavailableError(
            "bwrap", "prlimit (util-linux) is missing", "install util-linux"
        )
    return exe


def rlimit_args(limits: Limits, gpus: int | str) -> list[str]:
    """``prlimit`` options. With GPUs the address space is not capped (CUDA maps
    terabytes of it); the data segment is, and the cgroup, where there is one."""
    memory = f"--data={limits.memory_bytes}" if gpus not in (0, "0") else (
        f"--as={limits.memory_bytes}"
    )
    return [
        "prlimit", memory, f"--cpu={limits.cpu_seconds}:{limits.cpu_seconds + CPU_GRACE}",
        f"--nproc={limits.processes}",
        "--core=0", "--",
    ]


def sandbox_env(spec: SandboxSpec, extra: dict[str, str]) -> dict[str, str]:
    """The complete environment inside: nothing is inherited from the host."""
    python_bin = str(Path(spec.python.executable).parent)
    env = {
        "HOME": SANDBOX_HOME,
        "USER": "sandbox",
        "PATH": f"{python_bin}:/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "TMPDIR": SANDBOX_TMPFS[0],
        "PYTHONNOUSERSITE": "1",
        "MALLOC_ARENA_MAX": "4",
        "CUDA_VISIBLE_DEVICES": hostenv.cuda_visible_devices(spec.gpus),
        "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
        "SECURENB_SANDBOX": spec.backend,
    }
    pythonpath = spec.python.pythonpath()
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    if spec.output_dir:
        env["SECURENB_OUTPUT_DIR"] = spec.output_dir
    env.update(dict(spec.env))
    env.update(extra)
    return env


def options(spec: SandboxSpec, runtime: RuntimeDir, env: dict[str, str]) -> list[str]:
    """bwrap options, in mount order (a tmpfs before anything bound beneath it)."""
    opts = [
        "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent",
        "--new-session", "--cap-drop", "ALL", "--clearenv", "--hostname", "sandbox",
        "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID),
    ]
    for path, link in hostenv.system_entries():
        opts += ["--symlink", link, path] if link is not None else ["--ro-bind", path, path]
    for path in hostenv.etc_entries():
        opts += ["--ro-bind", path, path]
    opts += ["--ro-bind", str(runtime.passwd), "/etc/passwd"]
    opts += ["--ro-bind", str(runtime.group), "/etc/group"]
    opts += ["--proc", "/proc", "--dev", "/dev"]
    size = str(spec.limits.tmpfs_bytes)
    for tmp in SANDBOX_TMPFS:
        opts += ["--size", size, "--tmpfs", tmp]
    for device in hostenv.gpu_devices(spec.gpus):
        opts += ["--dev-bind", device, device]
    if spec.gpus not in (0, "0"):
        opts += ["--ro-bind", "/sys", "/sys"]
    binds = [Mount(p) for p in spec.python.read_only_paths()] + list(spec.mounts)
    binds += [Mount(str(runtime.inbox)), Mount(str(runtime.ipc), "rw")]
    workdir = Path(spec.workdir)
    if spec.workdir not in SANDBOX_TMPFS and not any(
        m.mode != "hidden" and (Path(m.path) == workdir or Path(m.path) in workdir.parents)
        for m in binds
    ):
        binds.append(Mount(spec.workdir, "hidden"))  # an empty, read-only working folder
    read_only_later = []
    for mount in sorted(binds, key=lambda m: Path(m.path).parts):
        if mount.mode == "hidden":
            opts += ["--size", "65536", "--tmpfs", mount.path]
            read_only_later.append(mount.path)
        else:
            opts += ["--bind" if mount.mode == "rw" else "--ro-bind", mount.path, mount.path]
    opts += ["--chdir", spec.workdir]
    for key, value in sorted(env.items()):
        opts += ["--setenv", key, value]
    for path in [*read_only_later, "/"]:
        opts += ["--remount-ro", path]
    return opts


def build(
    spec: SandboxSpec, runtime: RuntimeDir, command: list[str], extra_env: dict[str, str]
) -> Launch:
    """The bwrap invocation for ``command`` (argv of the kernel inside)."""
    exe = executable()
    if not seccomp.supported():
        raise BackendUnavailableError(
            "bwrap", f"no seccomp filter for {seccomp.machine()}", "use podman or docker"
        )
    opts = options(spec, runtime, sandbox_env(spec, extra_env))
    args_fd = _memfd("bwrap-args", b"".join(o.encode() + b"\0" for o in opts))
    filter_fd = _memfd("seccomp", seccomp.build_filter())
    argv = [exe, "--args", str(args_fd), "--seccomp", str(filter_fd), "--",
            *rlimit_args(spec.limits, spec.gpus), *command]
    group = cgroups.Cgroup.create(spec.limits) if cgroups.needed() else None
    if group is not None:
        argv = group.wrap(argv)
    return Launch(argv, (args_fd, filter_fd), group)


def _memfd(name: str, data: bytes) -> int:
    fd = os.memfd_create(name, os.MFD_CLOEXEC)  # inherited only through pass_fds
    os.write(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd
