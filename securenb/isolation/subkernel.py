"""One warm sandboxed kernel that runs cells and streams their output back.

The parent waits on the kernel's iopub and shell sockets, forwarding output as
it arrives (redacted), and watches the process: a crash, a limit kill or an OOM
inside ends the cell with ``died`` while the parent carries on. A timeout or a
parent interrupt sends an interrupt message; if the cell has not stopped after
a grace period the whole sandbox is killed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zmq
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.kernelspec import KernelSpec
from jupyter_client.manager import KernelManager

from securenb.isolation.display import inert
from securenb.isolation.errors import SandboxDiedError
from securenb.isolation.provisioner import SandboxProvisioner, provisioner_class
from securenb.isolation.runtime import RuntimeDir, outbox_folder, remove_outbox
from securenb.isolation.secrets import Redactor
from securenb.isolation.spec import SandboxSpec
from securenb.isolation.transfer import DatasetInput, DatasetKey, StagedDataset, stage_dataset

INTERRUPT_GRACE = 3.0
CAP_CHECK_SECONDS = 0.5  # how often a running cell's writable places are measured
_POLL_MS = 50

Sink = Callable[[str, dict[str, Any]], None]  # (msg_type, redacted content)


@dataclass
class Reply:
    """How one execute request ended."""

    status: str  # ok | error | aborted | timeout | interrupted | died
    ename: str = ""
    evalue: str = ""
    traceback: list[str] = field(default_factory=list)
    detail: str = ""


class SubKernel:
    """A sandboxed ipykernel kept warm for one configuration."""

    def __init__(self, spec: SandboxSpec, secret_env: dict[str, str]) -> None:
        self.spec = spec
        self._secret_env = dict(secret_env)
        self.km: KernelManager | None = None
        self.kc: BlockingKernelClient | None = None
        self.start_seconds = 0.0
        self.session: dict[str, Any] | None = None  # last state sent by the prelude
        self.outbox = outbox_folder()  # what runs write; outlives a sandbox that died
        self.display_namespace = f"securenb-sandbox-{uuid.uuid4().hex[:12]}-"
        self._datasets: dict[str, StagedDataset] = {}  # ciphertext sha256 -> its copy

    @property
    def provisioner(self) -> SandboxProvisioner:
        assert self.km is not None and isinstance(self.km.provisioner, SandboxProvisioner)
        return self.km.provisioner

    @property
    def runtime(self) -> RuntimeDir:
        runtime = self.provisioner.runtime
        assert runtime is not None
        return runtime

    def start(self, timeout: float = 120.0) -> None:
        """Start the sandbox and wait for the kernel to answer (the cold-start cost)."""
        began = time.perf_counter()
        km = KernelManager()
        km.kernel_id = f"securenb-{uuid.uuid4().hex[:12]}"
        spec = KernelSpec(
            argv=[self.spec.python.executable, "-m", "ipykernel_launcher", "-f",
                  "{connection_file}"],
            display_name=f"securenb {self.spec.backend}", language="python",
            interrupt_mode="message",
        )
        km._kernel_spec = spec
        provisioner = provisioner_class(self.spec.backend)(
            kernel_id=km.kernel_id, kernel_spec=spec, parent=km
        )
        provisioner.sandbox_spec = self.spec
        provisioner.secret_env = self._secret_env
        provisioner.outbox = self.outbox
        km.provisioner = provisioner
        self.km = km
        km.start_kernel(cwd=self.spec.workdir)
        try:
            self._pin_sockets(km, time.monotonic() + timeout)
            kc = km.client()
            kc.start_channels()
            self.kc = kc
            kc.wait_for_ready(timeout=timeout)
        except RuntimeError as exc:
            reason = f"{self.death_reason() or exc}{self.provisioner.output_tail()}"
            self.discard()
            raise SandboxDiedError(f"the {self.spec.backend} sandbox did not start: {reason}"
                                   ) from None
        self.start_seconds = time.perf_counter() - began

    def _pin_sockets(self, km: KernelManager, deadline: float) -> None:
        """Connect through hard links, in a folder of the parent's, to the sockets the
        kernel bound while it started (before any cell ran). A cell can replace a path in
        the IPC folder, e.g. by a link to a host socket, but not these links: a later
        reconnect still reaches the kernel's socket or nothing."""
        prefix = km.ip
        pinned = self.runtime.path / "conn"
        pinned.mkdir(mode=0o700, exist_ok=True)
        ports = [km.shell_port, km.iopub_port, km.stdin_port, km.control_port, km.hb_port]
        todo = {port: Path(f"{prefix}-{port}") for port in ports}
        while todo:
            for port, path in list(todo.items()):
                link = pinned / f"k-{port}"
                with contextlib.suppress(FileNotFoundError):
                    os.link(path, link, follow_symlinks=False)
                    if not stat.S_ISSOCK(os.lstat(link).st_mode):
                        raise RuntimeError(f"{path} is not the kernel's socket")
                    del todo[port]
            if todo and (time.monotonic() > deadline or not self.alive()):
                raise RuntimeError("the kernel did not open its sockets")
            time.sleep(0.002)
        km.ip = str(pinned / "k")

    def alive(self) -> bool:
        """Cheap check of the launcher process (no event loop round trip)."""
        if self.km is None or self.km.provisioner is None:
            return False
        process = self.provisioner.process
        return process is not None and process.poll() is None

    def dataset_copy(self, ds: DatasetInput, key: DatasetKey) -> StagedDataset:
        """This sandbox's copy of an encrypted dataset under its own one-time key (made at
        its first use, kept for the kernel's life; the dataset's own key never goes in)."""
        found = self._datasets.get(ds.sha256)
        if found is None:
            found = stage_dataset(ds, key, self.runtime.inbox / "datasets")
            self._datasets[ds.sha256] = found
        return found

    def stop_strays(self) -> int:
        """End every process the last cell left behind (the kernel itself stays warm)."""
        if not self.alive():
            return 0
        return self.provisioner.stop_strays()

    def death_reason(self) -> str:
        """Why the sandbox ended, in words (limits are named when they are the cause)."""
        if self.km is None or self.km.provisioner is None:
            return "not started"
        prov = self.provisioner
        code = prov.process.poll() if prov.process is not None else None
        if prov.died_of_memory():
            return f"killed by the memory limit ({self.spec.limits.memory_bytes} bytes)"
        if code is None:
            return ""
        signo = -code if code < 0 else code - 128 if code > 128 else 0
        if signo == signal.SIGXCPU:
            return f"killed by the CPU-time limit ({self.spec.limits.cpu_seconds} s)"
        if signo == signal.SIGKILL and self.spec.backend in ("podman", "docker"):
            return f"killed by SIGKILL (memory or process limit, or a kill; exit status {code})"
        if signo > 0:
            return f"killed by signal {signal.Signals(signo).name} (exit status {code})"
        return f"exited with status {code}"

    def run(
        self,
        cell: str,
        sink: Sink,
        redactor: Redactor,
        timeout: float,
        prelude: str | None = None,
        postlude: str | None = None,
    ) -> tuple[Reply, Reply | None, Reply | None]:
        """Run prelude (silent; the cell runs only if it succeeds), then the cell and the
        postlude (silent) pipelined; stream the cell's output. Returns the three replies."""
        kc = self.kc
        if kc is None or not self.alive():
            raise SandboxDiedError(f"the {self.spec.backend} sandbox is not running")
        deadline = time.monotonic() + timeout
        replies: dict[str, Reply] = {}
        ids: dict[str, str] = {}
        if prelude:
            ids[kc.execute(prelude, silent=True, store_history=False)] = "prelude"
            ended = self._await(ids, replies, None, sink, redactor, deadline, timeout)
            before = _pick(ids, replies, "prelude")
            if ended is not None or before is None or before.status != "ok":
                return ended or before or Reply("error"), before, None
        cell_id = kc.execute(cell, store_history=True, allow_stdin=False)
        ids[cell_id] = "cell"
        if postlude:
            ids[kc.execute(postlude, silent=True, store_history=False)] = "postlude"
        ended = self._await(ids, replies, cell_id, sink, redactor, deadline, timeout)
        if ended is not None:
            return ended, _pick(ids, replies, "prelude"), None
        return replies[cell_id], _pick(ids, replies, "prelude"), _pick(ids, replies, "postlude")

    def _await(self, ids: dict[str, str], replies: dict[str, Reply], cell_id: str | None,
               sink: Sink, redactor: Redactor, deadline: float, timeout: float) -> Reply | None:
        """Collect the replies to ``ids`` (and the cell's output until it is idle). None when
        all arrived; else how it ended (timeout, died; an interrupt is re-raised)."""
        assert self.kc is not None
        kc = self.kc
        target = cell_id or next(iter(ids))
        poller = zmq.Poller()
        poller.register(kc.iopub_channel.socket, zmq.POLLIN)
        poller.register(kc.shell_channel.socket, zmq.POLLIN)
        idle = cell_id is None
        next_check = time.monotonic() + CAP_CHECK_SECONDS
        try:
            while not (idle and all(i in replies for i in ids)):
                if time.monotonic() > deadline:
                    return self._stop(target, ids, replies, "timeout",
                                      f"timed out after {timeout:g} s", sink, redactor)
                if time.monotonic() > next_check:
                    next_check = time.monotonic() + CAP_CHECK_SECONDS
                    over = self.provisioner.passed_cap()
                    if over:
                        self._flush(sink, redactor)
                        self.shutdown(now=True)
                        return Reply("died", detail=f"the sandbox was stopped: {over}")
                events = dict(poller.poll(_POLL_MS))
                if kc.iopub_channel.socket in events:
                    idle = self._drain_iopub(target, sink, redactor) or idle
                if kc.shell_channel.socket in events:
                    self._drain_shell(ids, replies, redactor)
                if not events and not self.alive():
                    return self._died(sink, redactor)
        except KeyboardInterrupt:
            self._stop(target, ids, replies, "interrupted", "interrupted", sink, redactor)
            raise
        self._flush(sink, redactor)
        return None

    def _drain_iopub(self, cell_id: str, sink: Sink, redactor: Redactor) -> bool:
        assert self.kc is not None
        idle = False
        while self.kc.iopub_channel.msg_ready():
            msg = self.kc.get_iopub_msg(timeout=0)
            if msg.get("parent_header", {}).get("msg_id") != cell_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "status":
                idle = idle or content.get("execution_state") == "idle"
                continue
            if kind == "stream":
                shown = redactor.feed(content["name"], content["text"])
            elif kind == "clear_output":
                shown = redactor.other(kind, {"wait": bool(content.get("wait"))})
            elif kind in ("display_data", "update_display_data", "execute_result"):
                shown = redactor.display(
                    kind, inert(redactor.value(content), self.display_namespace))
            else:
                continue
            for output in shown:
                sink(*output)
        return idle

    def _drain_shell(self, ids: dict[str, str], replies: dict[str, Reply],
                     redactor: Redactor) -> None:
        assert self.kc is not None
        while self.kc.shell_channel.msg_ready():
            msg = self.kc.get_shell_msg(timeout=0)
            parent = msg.get("parent_header", {}).get("msg_id")
            if parent in ids:
                c = redactor.value(msg["content"])
                replies[parent] = Reply(c.get("status", "error"), c.get("ename", ""),
                                        c.get("evalue", ""), list(c.get("traceback", [])))

    def _flush(self, sink: Sink, redactor: Redactor) -> None:
        for output in redactor.flush():
            sink(*output)

    def _stop(self, target: str, ids: dict[str, str], replies: dict[str, Reply], status: str,
              detail: str, sink: Sink, redactor: Redactor) -> Reply:
        """Interrupt the request; kill the sandbox if it does not stop within the grace period."""
        assert self.km is not None and self.kc is not None
        with contextlib.suppress(Exception):
            self.km.interrupt_kernel()
        end = time.monotonic() + INTERRUPT_GRACE
        while target not in replies and time.monotonic() < end and self.alive():
            if self.kc.shell_channel.msg_ready() or self.kc.shell_channel.socket.poll(_POLL_MS):
                self._drain_shell(ids, replies, redactor)
            self._drain_iopub(target, sink, redactor)
        if target not in replies:
            detail += "; the sandbox did not stop in time and was killed"
            self.shutdown(now=True)
        self._flush(sink, redactor)
        return Reply(status, detail=detail)

    def _died(self, sink: Sink, redactor: Redactor) -> Reply:
        self._flush(sink, redactor)
        reason = self.death_reason() or "ended"
        self.shutdown(now=True)
        return Reply("died", detail=f"the sandbox died: {reason}")

    def discard(self) -> None:
        """Stop the sandbox and remove its outbox (after its last run was collected)."""
        self.shutdown(now=True)
        remove_outbox(self.outbox)

    def shutdown(self, now: bool = False) -> None:
        if self.kc is not None:
            with contextlib.suppress(Exception):
                self.kc.stop_channels()
            self.kc = None
        if self.km is not None:
            with contextlib.suppress(Exception):
                self.km.shutdown_kernel(now=now)
            with contextlib.suppress(Exception):
                self.km.cleanup_resources()
            self.km = None


def _pick(ids: dict[str, str], replies: dict[str, Reply], role: str) -> Reply | None:
    for msg_id, name in ids.items():
        if name == role:
            return replies.get(msg_id)
    return None
