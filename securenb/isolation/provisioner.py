"""jupyter_client kernel provisioners that start ipykernel inside a sandbox.

Registered under the entry point group ``jupyter_client.kernel_provisioners``
as ``securenb-bwrap``, ``securenb-podman``, ``securenb-docker`` and
``securenb-unsafe-local`` (see ``securenb kernels install``). The kernel talks
ZMQ over IPC sockets in a per-kernel folder shared with the sandbox, so the
sandbox has no network. Interrupts go as messages (``interrupt_mode:
message``) because signals sent to bwrap or a container CLI would stop the
sandbox, not the cell.

``%%secure_train`` sets ``sandbox_spec`` and ``secret_env`` on an instance
before starting it; a kernelspec gets its spec from the workspace policy and
the provisioner config (``python_env``, ``inputs``, ``output_dir``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from jupyter_client.connect import KernelConnectionInfo
from jupyter_client.provisioning.local_provisioner import LocalProvisioner
from traitlets import Dict, List, Unicode

from securenb.core import policy as policy_mod
from securenb.core.locate import DIR_NAME
from securenb.core.workspace import Workspace
from securenb.errors import SecurenbError, WorkspaceError
from securenb.isolation import bwrap, containers
from securenb.isolation.errors import IsolationError
from securenb.isolation.hostenv import PythonEnv
from securenb.isolation.outbox import Caps, Collected, collect, printable
from securenb.isolation.runtime import RuntimeDir, dedicated_uid
from securenb.isolation.secrets import Redactor
from securenb.isolation.session import SESSION_ENV
from securenb.isolation.spec import SandboxSpec, build_spec

if TYPE_CHECKING:
    from securenb.isolation.kernel_runs import KernelRun

HOST_ENV_KEEP = ("PATH", "LANG", "XDG_RUNTIME_DIR", "CONTAINERS_CONF", "DOCKER_HOST",
                 "DOCKER_CONFIG", "CONTAINER_HOST", "HOME")
PASSED_TO_KERNEL = (SESSION_ENV,)


class SandboxProvisioner(LocalProvisioner):
    """Common part: runtime folder, IPC transport, spec, clean-up. Subclasses wrap argv."""

    backend: ClassVar[str] = ""

    python_env = Dict(config=True, help="PythonEnv of the kernel (`securenb kernels install`).")
    inputs = List(Unicode(), default_value=["."], config=True,
                  help="Paths (relative to the notebook folder) mounted read-only.")
    output_dir = Unicode("outputs", config=True,
                         help="Writable folder (relative to the notebook folder).")

    sandbox_spec: SandboxSpec | None = None
    secret_env: dict[str, str] | None = None
    outbox: Path | None = None  # set by %%secure_train: collected after each run
    _failure = ""  # why the sandbox ended badly (logged once, recorded with the run)
    _stopping = False  # a kill or terminate was asked for: the end is no failure
    _run: KernelRun | None = None  # a whole-notebook kernel's run record
    _session: str | None = None  # its JPY_SESSION_NAME (which notebook it serves)
    records_runs = True  # False where the caller records the run itself (`securenb run`)
    runtime: RuntimeDir | None = None
    _launch: bwrap.Launch | None = None

    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        cwd = Path(kwargs.get("cwd") or os.getcwd())
        if self.sandbox_spec is None:
            self.sandbox_spec = self._spec_from_config(cwd)
        spec = self.sandbox_spec
        self.check_available(spec)
        if self.runtime is None:
            self.runtime = RuntimeDir.create(owner=self.runtime_owner(spec), outbox=self.outbox)
        km = self.parent
        if km is not None:
            km.transport = "ipc"
            km.ip = self.runtime.socket_prefix
            km.connection_file = str(self.runtime.connection_file)
            km.cache_ports = False
        kwargs = await super().pre_launch(**kwargs)
        owner = self.runtime.owner
        if owner is not None:  # the kernel runs as another user and must read its key
            os.chown(self.runtime.connection_file, owner, owner)
        declared = {k: kwargs["env"][k] for k in (*self.kernel_spec.env, *PASSED_TO_KERNEL)
                    if k in kwargs["env"]}
        self._session = kwargs["env"].get(SESSION_ENV)  # the notebook, for the run record
        extra = {**declared, **(self.secret_env or {})}
        self._launch = self.build_launch(spec, self.runtime, list(kwargs["cmd"]), extra)
        kwargs["cmd"] = self._launch.argv
        kwargs["pass_fds"] = self._launch.pass_fds
        kwargs["env"] = self.host_env(extra)
        kwargs["cwd"] = spec.workdir if spec.unsafe else str(self.runtime.path)
        if "stdout" not in kwargs:  # raw fd output may hold secrets: keep it out of server logs
            log = os.open(self.runtime.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC,
                          0o600)
            kwargs["stdout"] = kwargs["stderr"] = log
        return kwargs

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> KernelConnectionInfo:
        try:
            self._stopping = False
            info = await super().launch_kernel(cmd, **kwargs)
            if self.records_runs and self.outbox is None and self._run is None \
                    and self.sandbox_spec is not None:
                await asyncio.to_thread(self._begin_run, self.sandbox_spec)
            return info
        finally:
            if self._launch is not None:
                self._launch.close_fds()
            if self.runtime is not None and isinstance(kwargs.get("stdout"), int):
                os.close(kwargs["stdout"])

    async def kill(self, restart: bool = False) -> None:
        self._stopping = True
        await super().kill(restart=restart)

    async def terminate(self, restart: bool = False) -> None:
        self._stopping = True
        await super().terminate(restart=restart)

    async def send_signal(self, signum: int) -> None:
        """SIGKILL/SIGTERM end the whole sandbox; other signals go to the kernel inside."""
        if signum in (signal.SIGKILL, signal.SIGTERM) or self.process is None:
            await super().send_signal(signum)
            return
        target = self.kernel_pid()
        if target is not None:
            os.kill(target, signum)

    def sandbox_init(self) -> int | None:
        """Host pid of the sandbox's init, its pid 1 (bwrap -> init -> kernel)."""
        init = _children(self.pid) if self.pid is not None else []
        return init[0] if init else None

    def kernel_pid(self) -> int | None:
        """Host pid of the kernel: the first child of the sandbox's init."""
        init = self.sandbox_init()
        kernel = _children(init) if init is not None else []
        return kernel[0] if kernel else None

    async def poll(self) -> int | None:
        """Also stop a whole-notebook sandbox that passed a cap (the server polls this),
        and say in the server's log why a sandbox ended: its own output goes only to the
        runtime's kernel log, so without this a dead kernel shows no cause anywhere."""
        code = await super().poll()
        if code not in (None, 0) and not self._failure and not self._stopping:
            self._failure = f"the sandbox ended with status {code}{self.output_tail()}"
            self.log.error("securenb: kernel %s: %s", self.kernel_id, self._failure)
        if code is None and self.outbox is None:
            over = self.passed_cap()
            if over:
                self._failure = f"stopped: {over}"
                self.log.error("securenb: kernel %s stopped: %s", self.kernel_id, over)
                await self.send_signal(signal.SIGKILL)
        return code

    def output_tail(self, lines: int = 5) -> str:
        """The end of the kernel's own output, secrets redacted ("" when there is none)."""
        if self.runtime is None:
            return ""
        try:
            text = self.runtime.log.read_text(errors="replace")
        except OSError:
            return ""
        tail = [line for line in text.splitlines() if line.strip()][-lines:]
        redacted = Redactor(self.secret_env or {}).text(" | ".join(tail))
        return f"; kernel output: {redacted}" if tail else ""

    def stop_strays(self) -> int:
        """Kill every process of the sandbox except its kernel (and bwrap's init), so that
        nothing a cell started outlives the cell. Returns how many were killed.

        All of them are descendants of the init: orphans are re-parented to it inside
        the sandbox's pid namespace. Each is signalled through a pidfd taken while it
        was still the child of the parent it was listed under, never by a bare pid."""
        init, kernel = self.sandbox_init(), self.kernel_pid()
        if kernel is None or init is None:
            return 0
        killed = 0
        for _ in range(50):  # a forking process may add children while we kill
            strays = [(p, parent) for p, parent in _descendants(init) if p != kernel]
            hits = sum(_kill_child(pid, parent) for pid, parent in strays)
            if not hits:
                break
            killed += hits
            time.sleep(0.001)
        return killed

    async def cleanup(self, restart: bool = False) -> None:
        await super().cleanup(restart=restart)
        if self._launch is not None and self._launch.cgroup is not None:
            self._launch.cgroup.remove()
        if not restart and self.runtime is not None:
            spec = self.sandbox_spec
            if self.outbox is None and spec is not None:
                # a whole-notebook kernel: what it wrote comes out (and is recorded) now
                done = Collected()
                if spec.output_dir is not None:
                    done = collect(self.runtime.outbox, Path(spec.output_dir),
                                   Caps(max_bytes=spec.limits.output_bytes),
                                   Redactor(self.secret_env or {}).text)
                for path, why in done.refused:
                    self.log.warning("securenb: output not copied: %s: %s",
                                     printable(str(path)), why)
                if done.error:
                    self.log.error("securenb: outputs of kernel %s refused: %s",
                                   self.kernel_id, done.error)
                await asyncio.to_thread(self._end_run, done)
            self.runtime.remove()
            self.runtime = None

    def _begin_run(self, spec: SandboxSpec) -> None:
        from securenb.isolation.kernel_runs import KernelRun  # it builds on this module

        try:
            self._run = KernelRun.begin(spec, self._session)
        except SecurenbError as exc:
            self.log.error("securenb: kernel %s runs unrecorded: %s", self.kernel_id, exc)

    def _end_run(self, done: Collected) -> None:
        run, self._run = self._run, None
        if run is None:
            return
        try:
            run.end(done, self._failure)
        except SecurenbError as exc:
            self.log.error("securenb: recording the run of kernel %s failed: %s",
                           self.kernel_id, exc)

    def passed_cap(self) -> str:
        """Which cap the running sandbox passed, in words ("" when none): the size of its
        writable places, or the CPU time of all its processes together."""
        spec, runtime = self.sandbox_spec, self.runtime
        if spec is None or runtime is None:
            return ""
        over = runtime.over_cap(spec.limits)
        if not over and (self.cpu_seconds() or 0.0) > spec.limits.cpu_seconds:
            over = ("its processes together passed the CPU-time limit "
                    f"({spec.limits.cpu_seconds} s)")
        return over

    def cpu_seconds(self) -> float | None:
        """CPU time used by all processes of the sandbox over its life: from its cgroup
        where it has one (root callers), else summed over its pid namespace (RLIMIT_CPU
        bounds each process only, so N busy workers would get N budgets)."""
        launch = self._launch
        counted = launch.cgroup.cpu_seconds() if launch and launch.cgroup else None
        if counted is not None:  # None too where the cgroup has no CPU accounting
            return counted
        init = self.sandbox_init()
        if self.backend == "unsafe-local" or init is None:
            return None
        return namespace_cpu_seconds(init)

    def died_of_memory(self) -> bool:
        """Whether the sandbox's cgroup saw the OOM killer (to name why it died)."""
        launch = self._launch
        return launch is not None and launch.cgroup is not None and launch.cgroup.memory_exceeded()

    # -- per backend --------------------------------------------------------------
    def check_available(self, spec: SandboxSpec) -> None:
        """Raise BackendUnavailableError with an install hint (no silent fallback)."""

    def runtime_owner(self, spec: SandboxSpec) -> int | None:
        return None

    def build_launch(
        self, spec: SandboxSpec, runtime: RuntimeDir, cmd: list[str], extra_env: dict[str, str]
    ) -> bwrap.Launch:
        raise NotImplementedError

    def host_env(self, extra: dict[str, str]) -> dict[str, str]:
        """Environment of the launcher on the host (not of the kernel)."""
        return {k: os.environ[k] for k in HOST_ENV_KEEP if k in os.environ}

    # -- kernelspec path --------------------------------------------------------------
    def _spec_from_config(self, cwd: Path) -> SandboxSpec:
        try:
            root = Workspace.find(cwd).root
        except WorkspaceError:
            root = cwd
        policy, _ = policy_mod.load_policy(root)
        python = PythonEnv.from_json(self.python_env) if self.python_env else PythonEnv.current()
        inputs = tuple(cwd / p for p in self.inputs)
        hidden = tuple(p / name for p in inputs for name in (DIR_NAME, ".git", ".env"))
        return build_spec(
            policy.isolation, workdir=cwd, backend=self.backend, python=python, inputs=inputs,
            hidden=hidden, output_dir=cwd / self.output_dir if self.output_dir else None,
        )


class BwrapProvisioner(SandboxProvisioner):
    backend = "bwrap"

    def check_available(self, spec: SandboxSpec) -> None:
        bwrap.executable()

    def runtime_owner(self, spec: SandboxSpec) -> int | None:
        return dedicated_uid() if os.geteuid() == 0 else None

    def build_launch(
        self, spec: SandboxSpec, runtime: RuntimeDir, cmd: list[str], extra_env: dict[str, str]
    ) -> bwrap.Launch:
        return bwrap.build(spec, runtime, cmd, extra_env)


class PodmanProvisioner(SandboxProvisioner):
    backend = "podman"

    def check_available(self, spec: SandboxSpec) -> None:
        containers.engine(self.backend)

    def runtime_owner(self, spec: SandboxSpec) -> int | None:
        return containers.container_uid(self.backend)

    def build_launch(
        self, spec: SandboxSpec, runtime: RuntimeDir, cmd: list[str], extra_env: dict[str, str]
    ) -> bwrap.Launch:
        return containers.build(self.backend, spec, runtime, cmd, extra_env, self.kernel_id)

    def host_env(self, extra: dict[str, str]) -> dict[str, str]:
        env = super().host_env(extra)
        env.update(containers.engine_env(self.backend))
        env.update(extra)  # read by `-e NAME` so values stay out of argv
        return env

    _init: int | None = None

    def sandbox_init(self) -> int | None:
        """The container's init (catatonit, ``--init``), as the engine reports it."""
        if self._init is None and self.process is not None and self.process.poll() is None:
            self._init = containers.init_pid(self.backend, self.kernel_id)
        return self._init

    async def send_signal(self, signum: int) -> None:
        """Signals go to the container through the engine (the CLI is not its parent);
        ending it removes the container, then the CLI (kill/terminate come here too)."""
        if signum in (signal.SIGKILL, signal.SIGTERM):
            containers.remove(self.backend, self.kernel_id)
            await LocalProvisioner.send_signal(self, signum)
        else:
            containers.signal(self.backend, self.kernel_id, signum)

    async def cleanup(self, restart: bool = False) -> None:
        containers.remove(self.backend, self.kernel_id)
        await super().cleanup(restart=restart)


class DockerProvisioner(PodmanProvisioner):
    backend = "docker"


class UnsafeLocalProvisioner(SandboxProvisioner):
    """No isolation at all, for debugging; every record says ``unsafe``."""

    backend = "unsafe-local"

    def build_launch(
        self, spec: SandboxSpec, runtime: RuntimeDir, cmd: list[str], extra_env: dict[str, str]
    ) -> bwrap.Launch:
        self.log.warning("securenb: starting kernel %s WITHOUT a sandbox (unsafe-local)",
                         self.kernel_id)
        return bwrap.Launch(cmd, (), None)

    def host_env(self, extra: dict[str, str]) -> dict[str, str]:
        assert self.sandbox_spec is not None
        env = bwrap.sandbox_env(self.sandbox_spec, extra)
        env["HOME"] = os.path.expanduser("~")
        if self.sandbox_spec.output_dir and self.runtime is not None:  # outputs still collected
            env["SECURENB_OUTPUT_DIR"] = str(self.runtime.outbox)
            env["SECURENB_PREVIOUS_OUTPUTS"] = self.sandbox_spec.output_dir
        return env


def _children(pid: int | None) -> list[int]:
    """Children of ``pid``: those of every thread (a thread's children are its own)."""
    found: list[int] = []
    with contextlib.suppress(OSError, ValueError):
        for task in sorted(os.listdir(f"/proc/{pid}/task"), key=int):
            with contextlib.suppress(OSError):
                text = Path(f"/proc/{pid}/task/{task}/children").read_text()
                found += [int(p) for p in text.split()]
    return found


def _descendants(pid: int) -> list[tuple[int, int]]:
    """(pid, parent) of every process below ``pid``, without recursion."""
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for child in _children(parent):
            found.append((child, parent))
            todo.append(child)
    return found


def namespace_cpu_seconds(init: int) -> float:
    """CPU seconds of a pid namespace: user + system time of its init and of every process
    below it, with their reaped children's (a reaped process counts in its parent's, an
    orphan's in the init's). Parents are read before their children, so a child reaped
    while we read is missed once (counted at the next reading), never counted twice."""
    ticks = 0
    for pid in (init, *(p for p, _ in _descendants(init))):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def _kill_child(pid: int, parent: int) -> int:
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        return 0  # gone already
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        if fields[0] in "ZX" or int(fields[1]) != parent:
            return 0  # dead already (left for its parent to reap), or not the one we listed
        signal.pidfd_send_signal(fd, signal.SIGKILL)
        return 1
    except (OSError, ValueError, IndexError):
        return 0
    finally:
        os.close(fd)


PROVISIONERS: dict[str, type[SandboxProvisioner]] = {
    "bwrap": BwrapProvisioner,
    "podman": PodmanProvisioner,
    "docker": DockerProvisioner,
    "unsafe-local": UnsafeLocalProvisioner,
}


def provisioner_class(backend: str) -> type[SandboxProvisioner]:
    try:
        return PROVISIONERS[backend]
    except KeyError:
        raise IsolationError(
            f"backend {backend!r} cannot run %%secure_train cells: they exchange data through "
            f"a shared folder; choose one of {', '.join(PROVISIONERS)}, or run the whole "
            "notebook in a kubernetes kernel (docs/isolation.md)"
        ) from None
