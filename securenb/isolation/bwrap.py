"""bubblewrap command lines: the default sandbox on Linux (no daemon, ~tens of ms).

The sandbox's root is an empty tmpfs, remounted read-only at the end; only the
system dirs, an allowlist of /etc, one Python environment, the declared inputs
(read-only), the output folder and the IPC folder (read-write) exist in it. It
gets every namespace (no network at all), no capabilities, no further user
namespaces, a new session (no TTY injection), a seccomp filter, rlimits (set
by ``prlimit`` inside, so the process count is per sandbox) and, when the
caller is root, a cgroup. Options travel through a memfd (``--args``), so
secret values never appear in a process list.

The sandbox is never host root. A regular caller's sandbox lives in a user
namespace that maps its one user to the caller. A root caller's would map to
host root, so there bwrap sets the sandbox up as root without a user
namespace (root may read the inputs wherever they are) and ``setpriv`` turns
the kernel into a dedicated unprivileged uid, with every capability and the
bounding set dropped, before anything of the sandbox runs. ``/proc/sys`` is
read-only either way. The output folder seen inside is the runtime's
``outbox``; earlier outputs are visible read-only at ``SANDBOX_PREVIOUS``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from securenb.isolation import cgroups, hostenv, seccomp
from securenb.isolation.errors import BackendUnavailableError
from securenb.isolation.limits import Limits
from securenb.isolation.runtime import RuntimeDir, dedicated_uid
from securenb.isolation.spec import (
    SANDBOX_HOME,
    SANDBOX_PREVIOUS,
    SANDBOX_TMPFS,
    SANDBOX_UID,
    Mount,
    SandboxSpec,
)

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
    for tool in ("prlimit", "setpriv"):
        if shutil.which(tool) is None:
            raise BackendUnavailableError(
                "bwrap", f"{tool} (util-linux) is missing", "install util-linux"
            )
    return exe


def drop_args(uid: int) -> list[str]:
    """``setpriv`` turning a root-started sandbox into ``uid`` with no capabilities."""
    return ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
            "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]


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
        env["SECURENB_PREVIOUS_OUTPUTS"] = SANDBOX_PREVIOUS
    env.update(dict(spec.env))
    env.update(extra)
    return env


def options(spec: SandboxSpec, runtime: RuntimeDir, env: dict[str, str],
            drop_to: int | None = None, files: Sequence[tuple[int, str]] = ()) -> list[str]:
    """bwrap options, in mount order (a tmpfs before anything bound beneath it).

    ``drop_to``: a root caller's dedicated uid (no user namespace; ``drop_args``
    switches to it); None for a regular caller (a user namespace maps uid 1000 to it).
    ``files``: (fd, path) of files bwrap copies in from an open file (read-only at
    path), for inputs that must be exactly the bytes the host hashed."""
    if drop_to is None:
        opts = ["--unshare-all", "--unshare-user", "--disable-userns", "--cap-drop", "ALL",
                "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID)]
    else:  # setpriv needs these three to drop to drop_to; it then drops them too
        opts = ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts",
                "--unshare-cgroup-try", "--cap-drop", "ALL", "--cap-add", "CAP_SETUID",
                "--cap-add", "CAP_SETGID", "--cap-add", "CAP_SETPCAP"]
    opts += ["--die-with-parent", "--new-session", "--clearenv", "--hostname", "sandbox"]
    for path, link in hostenv.system_entries():
        opts += ["--symlink", link, path] if link is not None else ["--ro-bind", path, path]
    for path in hostenv.etc_entries():
        opts += ["--ro-bind", path, path]
    opts += ["--ro-bind", str(runtime.passwd), "/etc/passwd"]
    opts += ["--ro-bind", str(runtime.group), "/etc/group"]
    opts += ["--proc", "/proc", "--ro-bind", "/proc/sys", "/proc/sys", "--dev", "/dev"]
    size = str(spec.limits.tmpfs_bytes)
    for tmp in SANDBOX_TMPFS:  # writable by the sandbox user whatever uid it has
        opts += ["--perms", "1777", "--size", size, "--tmpfs", tmp]
    for device in hostenv.gpu_devices(spec.gpus):
        opts += ["--dev-bind", device, device]
    if spec.gpus not in (0, "0"):
        opts += ["--ro-bind", "/sys", "/sys"]
    binds = [Mount(p) for p in spec.python.read_only_paths()] + list(spec.mounts)
    if spec.output_dir is not None:
        binds.append(Mount(SANDBOX_PREVIOUS))
    binds += [Mount(str(runtime.inbox)), Mount(str(runtime.ipc), "rw")]
    workdir = Path(spec.workdir)
    if spec.workdir not in SANDBOX_TMPFS and not any(
        m.mode != "hidden" and (Path(m.path) == workdir or Path(m.path) in workdir.parents)
        for m in binds
    ):
        binds.append(Mount(spec.workdir, "hidden"))  # an empty, read-only working folder
    read_only_later: list[str] = []
    mounted: list[Path] = []  # bind mounts: the folders beneath them exist already
    for mount in sorted(binds, key=lambda m: Path(m.path).parts):
        opts += _parents(Path(mount.path), mounted)
        if mount.mode != "hidden":
            mounted.append(Path(mount.path))
        if mount.mode == "hidden" and not Path(mount.path).is_dir():
            opts += ["--ro-bind", "/dev/null", mount.path]  # a hidden file reads as empty
        elif mount.mode == "hidden":
            opts += ["--size", "65536", "--tmpfs", mount.path]
            read_only_later.append(mount.path)
        elif mount.path == spec.output_dir:
            opts += ["--bind", str(runtime.outbox), mount.path]
        elif mount.path == SANDBOX_PREVIOUS:
            opts += ["--ro-bind", str(spec.output_dir), SANDBOX_PREVIOUS]
        else:
            opts += ["--bind" if mount.mode == "rw" else "--ro-bind", mount.path, mount.path]
    for fd, path in files:
        opts += [*_parents(Path(path), mounted), "--perms", "0444", "--ro-bind-data", str(fd),
                 path]
    opts += ["--chdir", spec.workdir]
    for key, value in sorted(env.items()):
        opts += ["--setenv", key, value]
    for path in [*read_only_later, "/"]:
        opts += ["--remount-ro", path]
    return opts


def _parents(path: Path, mounted: list[Path]) -> list[str]:
    """Create the folders above a mount point as 0755: bwrap would copy the host's modes,
    and a 0700 folder of root's (``/root``, a private temporary folder) would bar the
    unprivileged sandbox user from everything mounted beneath it."""
    opts: list[str] = []
    for parent in reversed(path.parents[:-1]):
        if str(parent) not in SANDBOX_TMPFS and not any(
                parent == m or m in parent.parents for m in mounted):
            opts += ["--perms", "0755", "--dir", str(parent)]
    return opts


def build(
    spec: SandboxSpec, runtime: RuntimeDir, command: list[str], extra_env: dict[str, str],
    files: Sequence[tuple[int, str]] = (),
) -> Launch:
    """The bwrap invocation for ``command`` (argv of the kernel inside); ``files`` as for
    :func:`options` (their fds are duplicated: the caller keeps its own)."""
    exe = executable()
    if not seccomp.supported():
        raise BackendUnavailableError(
            "bwrap", f"no seccomp filter for {seccomp.machine()}", "use podman or docker"
        )
    drop_to = (runtime.owner or dedicated_uid()) if os.geteuid() == 0 else None
    copies = [(os.dup(fd), path) for fd, path in files]
    opts = options(spec, runtime, sandbox_env(spec, extra_env), drop_to, copies)
    args_fd = _memfd("bwrap-args", b"".join(o.encode() + b"\0" for o in opts))
    filter_fd = _memfd("seccomp", seccomp.build_filter())
    drop = drop_args(drop_to) if drop_to is not None else []
    argv = [exe, "--args", str(args_fd), "--seccomp", str(filter_fd), "--",
            *drop, *rlimit_args(spec.limits, spec.gpus), *command]
    group = cgroups.Cgroup.create(spec.limits) if cgroups.needed() else None
    if group is not None:
        argv = group.wrap(argv)
    return Launch(argv, (args_fd, filter_fd, *(fd for fd, _ in copies)), group)


def _memfd(name: str, data: bytes) -> int:
    fd = os.memfd_create(name, os.MFD_CLOEXEC)  # inherited only through pass_fds
    os.write(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd
