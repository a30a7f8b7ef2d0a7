"""podman and docker: the same command line, through each engine's CLI.

Flags: ``--network none``, ``--read-only``, ``--cap-drop ALL``, ``--security-opt
no-new-privileges``, a non-root user, ``--memory``/``--memory-swap``,
``--pids-limit``, a CPU-time ulimit, the engine's default seccomp profile, and
GPUs through CDI (podman) or ``--gpus`` (docker). The image comes from policy;
without one, ``host`` mode runs an empty image with the host's system dirs and
Python environment mounted read-only (the same view bwrap gives).

Host quirks handled here (see docs/isolation.md): on hybrid cgroup hosts
podman runs in a private mount namespace with ``/sys/fs/cgroup/unified``
unmounted; ``CONTAINERS_CONF`` points at a file with ``default_ulimits = []``;
without systemd the cgroup manager is ``cgroupfs``.
"""

from __future__ import annotations

import io
import os
import resource
import shutil
import subprocess
import tarfile
import tempfile
from functools import cache
from pathlib import Path

from securenb.isolation import detect, hostenv
from securenb.isolation.bwrap import CPU_GRACE, Launch, sandbox_env
from securenb.isolation.errors import BackendUnavailableError, IsolationError
from securenb.isolation.runtime import RuntimeDir
from securenb.isolation.spec import (
    SANDBOX_HOME,
    SANDBOX_PREVIOUS,
    SANDBOX_TMPFS,
    SANDBOX_UID,
    SandboxSpec,
)

HOST_IMAGE = "localhost/securenb-host:1"
HINTS = {
    "podman": "install it: apt-get install podman (Debian/Ubuntu), dnf install podman",
    "docker": "install Docker Engine, or point DOCKER_HOST at `podman system service`",
}
_IMAGE_PYTHONPATH = "/opt/securenb"


def engine(backend: str) -> str:
    """Path of the engine CLI, checked to reach an engine; else BackendUnavailableError."""
    exe = shutil.which(backend)
    if exe is None:
        raise BackendUnavailableError(backend, f"the {backend} CLI is not on PATH", HINTS[backend])
    if backend == "podman" and detect.container_init() is None:
        raise BackendUnavailableError(backend, "catatonit, the init `podman run --init` needs, "
                                      "is missing", "apt-get install catatonit")
    _check_engine(backend, exe)
    return exe


@cache
def _check_engine(backend: str, exe: str) -> None:
    proc = subprocess.run(
        [*prefix(backend), exe, *global_options(backend), "version", "--format",
         "{{.Server.Version}}" if backend == "docker" else "{{.Version}}"],
        capture_output=True, text=True, env={**os.environ, **engine_env(backend)}, timeout=30,
        check=False,
    )
    if proc.returncode != 0:
        raise BackendUnavailableError(
            backend, f"the {backend} engine does not answer ({proc.stderr.strip()[:300]})",
            HINTS[backend],
        )


def rootless(backend: str) -> bool:
    return backend == "podman" and os.geteuid() != 0


def container_uid(backend: str) -> int | None:
    """Owner for shared folders: the container user, unless rootless podman maps us 1:1."""
    return None if rootless(backend) else SANDBOX_UID


def _hybrid_cgroups() -> bool:
    unified = Path("/sys/fs/cgroup/unified")
    return os.path.ismount(unified) and not Path("/sys/fs/cgroup/cgroup.controllers").exists()


def prefix(backend: str) -> list[str]:
    """Run podman in a private mount namespace without the v2 hierarchy of a hybrid host."""
    if backend == "podman" and _hybrid_cgroups() and os.geteuid() == 0:
        return ["unshare", "-m", "sh", "-c", 'umount /sys/fs/cgroup/unified && exec "$@"', "sh"]
    return []


def global_options(backend: str) -> list[str]:
    if backend == "podman" and not Path("/run/systemd/system").exists():
        return ["--cgroup-manager", "cgroupfs"]
    return []


def engine_env(backend: str) -> dict[str, str]:
    """Environment for the engine CLI (podman: our containers.conf, unless the user set one)."""
    if backend != "podman" or "CONTAINERS_CONF" in os.environ:
        return {}
    return {"CONTAINERS_CONF": _containers_conf()}


@cache
def _containers_conf() -> str:
    """A private (0700 folder) containers.conf: a shared /tmp name could be planted."""
    conf = Path(tempfile.mkdtemp(prefix="securenb-podman-")) / "containers.conf"
    conf.write_text("[containers]\ndefault_ulimits = []\n")
    return str(conf)


def container_name(kernel_id: str) -> str:
    return f"securenb-{kernel_id}"


def build(
    backend: str,
    spec: SandboxSpec,
    runtime: RuntimeDir,
    cmd: list[str],
    extra_env: dict[str, str],
    kernel_id: str,
) -> Launch:
    """``<engine> run ...`` for the kernel ``cmd``; secrets are passed by name only."""
    exe = engine(backend)
    image = spec.image or "host"
    if image == "host":
        ensure_host_image(backend, exe)
    limits = spec.limits
    size = limits.tmpfs_bytes
    argv = [*prefix(backend), exe, *global_options(backend), "run", "--rm", "--init",
            "--name", container_name(kernel_id), "--hostname", "sandbox",
            "--network", "none", "--read-only", "--cap-drop", "ALL",
            "--security-opt", "no-new-privileges",
            "--memory", str(limits.memory_bytes), "--memory-swap", str(limits.memory_bytes),
            "--pids-limit", str(limits.processes),
            "--ulimit", f"cpu={limits.cpu_seconds}:{limits.cpu_seconds + CPU_GRACE}",
            "--ulimit", "core=0:0", "--ulimit", f"nproc={limits.processes}:{limits.processes}",
            *_nofile_ulimit(),
            "--shm-size", str(size), "--workdir", spec.workdir]
    tmp_opts = f"rw,size={size},mode=1777"
    if backend == "podman":
        argv += ["--read-only-tmpfs=false"]
        tmp_opts += ",notmpcopyup"
        argv += ["--userns", "keep-id"] if rootless(backend) else []
    if not rootless(backend):
        argv += ["--user", f"{SANDBOX_UID}:{SANDBOX_UID}"]
    argv += ["--tmpfs", f"{SANDBOX_TMPFS[0]}:{tmp_opts}", "--tmpfs", f"{SANDBOX_HOME}:{tmp_opts}"]
    argv += _gpu_flags(backend, spec.gpus)
    for mount in _mounts(spec, runtime, image):
        argv += mount
    env = sandbox_env(spec, {})
    if image != "host":
        env["PATH"] = "/usr/local/bin:/usr/bin:/bin"
        env["PYTHONPATH"] = _IMAGE_PYTHONPATH
    for key, value in sorted(env.items()):
        argv += ["--env", f"{key}={value}"]
    for key in sorted(extra_env):
        argv += ["--env", key]  # value read from the CLI's environment, not argv
    inner = list(cmd)
    if image != "host":
        inner[0] = "python3"
    argv += [HOST_IMAGE if image == "host" else image, *inner]
    return Launch(argv, (), None)


def _mounts(spec: SandboxSpec, runtime: RuntimeDir, image: str) -> list[list[str]]:
    out: list[list[str]] = []

    def bind(src: str, dst: str, mode: str) -> None:
        out.append(["--volume", f"{src}:{dst}:{mode}"])

    if image == "host":
        for path, link in hostenv.system_entries():
            if link is None:
                bind(path, path, "ro")
        for path in hostenv.etc_entries():
            bind(path, path, "ro")
        for path in spec.python.read_only_paths():
            bind(path, path, "ro")
    else:
        bind(spec.python.securenb_dir, f"{_IMAGE_PYTHONPATH}/securenb", "ro")
    bind(str(runtime.passwd), "/etc/passwd", "ro")
    bind(str(runtime.group), "/etc/group", "ro")
    for mount in spec.mounts:
        if mount.mode == "hidden" and not Path(mount.path).is_dir():
            bind("/dev/null", mount.path, "ro")
        elif mount.mode == "hidden":
            out.append(["--mount", f"type=tmpfs,destination={mount.path},tmpfs-size=4096,ro=true"])
        elif mount.path == spec.output_dir:  # the sandbox writes its outbox, reads the rest
            bind(str(runtime.outbox), mount.path, "rw")
            bind(mount.path, SANDBOX_PREVIOUS, "ro")
        else:
            bind(mount.path, mount.path, mount.mode)
    bind(str(runtime.inbox), str(runtime.inbox), "ro")
    bind(str(runtime.ipc), str(runtime.ipc), "rw")
    return out


def _nofile_ulimit() -> list[str]:
    """Any --ulimit makes podman add its default nofile and nproc limits, which may exceed
    what this process may grant: pass nproc (above) and nofile (ours) explicitly."""
    soft, hard = (-1 if v == resource.RLIM_INFINITY else v
                  for v in resource.getrlimit(resource.RLIMIT_NOFILE))
    return ["--ulimit", f"nofile={soft}:{hard}"]


def _gpu_flags(backend: str, gpus: int | str) -> list[str]:
    if gpus in (0, "0"):
        return []
    if backend == "podman":
        if gpus == "all":
            return ["--device", "nvidia.com/gpu=all"]
        return [arg for i in range(int(gpus)) for arg in ("--device", f"nvidia.com/gpu={i}")]
    if gpus == "all":
        return ["--gpus", "all"]
    devices = ",".join(str(i) for i in range(int(gpus)))
    return ["--gpus", f'"device={devices}"']


@cache
def ensure_host_image(backend: str, exe: str) -> None:
    """Create the empty ``host`` image (mount points and /lib symlinks) once per process."""
    env = {**os.environ, **engine_env(backend)}
    base = [*prefix(backend), exe, *global_options(backend)]
    found = subprocess.run([*base, "image", "inspect", HOST_IMAGE], capture_output=True,
                           env=env, timeout=60, check=False)
    if found.returncode == 0:
        return
    proc = subprocess.run([*base, "import", "-", HOST_IMAGE], input=_host_image_tar(),
                          capture_output=True, env=env, timeout=120, check=False)
    if proc.returncode != 0:
        raise IsolationError(
            f"{backend} import of {HOST_IMAGE} failed: {proc.stderr.decode(errors='replace')[:300]}"
        )


def _host_image_tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name in ("usr", "etc", "tmp", "proc", "dev", "sys", "home", "run", "opt", "var"):
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for path, link in hostenv.system_entries():
            if link is not None:
                info = tarfile.TarInfo(path.lstrip("/"))
                info.type, info.linkname = tarfile.SYMTYPE, link
                tar.addfile(info)
    return buf.getvalue()


def image_digest(backend: str, image: str | None) -> str | None:
    """The image ID (sha256) the engine resolved ``image`` to, for provenance."""
    exe = shutil.which(backend)
    if exe is None:
        return None
    ref = HOST_IMAGE if (image or "host") == "host" else image
    proc = subprocess.run(
        [*prefix(backend), exe, *global_options(backend), "image", "inspect", "--format",
         "{{.Id}}", str(ref)],
        capture_output=True, text=True, env={**os.environ, **engine_env(backend)}, timeout=60,
        check=False,
    )
    value = proc.stdout.strip().removeprefix("sha256:")
    return value if proc.returncode == 0 and len(value) == 64 else None


def remove(backend: str, kernel_id: str) -> None:
    """Force-remove the kernel's container (the CLI's death does not stop it)."""
    _engine_call(backend, "rm", "--force", *(["--time", "0"] if backend == "podman" else []),
                 container_name(kernel_id))


def init_pid(backend: str, kernel_id: str) -> int | None:
    """Host pid of the kernel container's init, or None if the engine does not say."""
    exe = shutil.which(backend)
    if exe is None:
        return None
    proc = subprocess.run(
        [*prefix(backend), exe, *global_options(backend), "inspect", "--format",
         "{{.State.Pid}}", container_name(kernel_id)],
        capture_output=True, text=True, env={**os.environ, **engine_env(backend)}, timeout=60,
        check=False)
    value = proc.stdout.strip()
    return int(value) if proc.returncode == 0 and value.isdigit() and int(value) > 0 else None


def signal(backend: str, kernel_id: str, signum: int) -> None:
    _engine_call(backend, "kill", "--signal", str(signum), container_name(kernel_id))


def _engine_call(backend: str, *args: str) -> None:
    exe = shutil.which(backend)
    if exe is not None:
        subprocess.run([*prefix(backend), exe, *global_options(backend), *args],
                       capture_output=True, env={**os.environ, **engine_env(backend)}, timeout=60,
                       check=False)
