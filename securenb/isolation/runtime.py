"""The per-kernel runtime folder shared with the sandbox: connection file, IPC sockets.

ZMQ talks over Unix sockets in this folder, so a sandbox needs no network at
all. The path is kept short because a socket path may not exceed 107 bytes.
The folder also holds the sandbox's ``/etc/passwd`` and ``/etc/group`` (one
unprivileged user), the ``inbox`` where the parent stages declared inputs and
the ``outbox``: the sandbox's only writable folder, mounted where the output
folder is. The parent copies what a run wrote from there into the real output
folder (see ``outbox``), so the sandbox never writes a host folder directly.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from securenb.isolation.errors import IsolationError
from securenb.isolation.limits import Limits
from securenb.isolation.spec import (
    DEDICATED_UID_BASE,
    DEDICATED_UID_COUNT,
    SANDBOX_HOME,
    SANDBOX_UID,
)

_MAX_SOCKET_PATH = 100
PARENT = "parent.pid"


def base_dir() -> Path:
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and Path(xdg).is_dir() and os.access(xdg, os.W_OK):
        return Path(xdg)
    return Path(tempfile.gettempdir())


def dedicated_uid() -> int:
    """A host uid for one sandbox started by root: unprivileged, and no one else's."""
    return DEDICATED_UID_BASE + secrets.randbelow(DEDICATED_UID_COUNT)


@dataclass(frozen=True)
class RuntimeDir:
    path: Path
    owner: int | None = None  # host uid the sandbox runs as, when not the caller's
    outbox_path: Path | None = None  # kept by its creator beyond this folder's life

    @classmethod
    def create(cls, owner: int | None = None, outbox: Path | None = None) -> RuntimeDir:
        """A fresh 0700 folder; ``owner`` (a uid) when the sandbox runs as another user;
        ``outbox`` when the caller wants the outbox to outlive the sandbox (see
        ``outbox_folder``)."""
        _collect_stale(base_dir())
        path = Path(tempfile.mkdtemp(prefix="snb-", dir=base_dir()))
        if len(str(path / "ipc" / "k-99")) > _MAX_SOCKET_PATH:
            shutil.rmtree(path)
            raise IsolationError(f"{path}: too long for IPC socket paths; set XDG_RUNTIME_DIR")
        rt = cls(path, owner, outbox)
        for sub in (rt.ipc, rt.inbox, path / "etc"):
            sub.mkdir()
        if outbox is None:
            rt.outbox.mkdir()
        uid = SANDBOX_UID if owner is None or owner == SANDBOX_UID else owner
        rt.passwd.write_text(
            f"sandbox:x:{uid}:{uid}:sandbox:{SANDBOX_HOME}:/usr/sbin/nologin\n"
            "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
        )
        rt.group.write_text(f"sandbox:x:{uid}:\nnogroup:x:65534:\n")
        (path / PARENT).write_text(str(os.getpid()))
        if owner is not None:
            for item in (path, rt.ipc, rt.inbox, rt.outbox):
                os.chown(item, owner, owner)
        return rt

    @property
    def ipc(self) -> Path:
        """The only folder the sandbox may write here: sockets and the connection file."""
        return self.path / "ipc"

    @property
    def connection_file(self) -> Path:
        return self.ipc / "kernel.json"

    @property
    def socket_prefix(self) -> str:
        return str(self.ipc / "k")

    @property
    def inbox(self) -> Path:
        return self.path / "inbox"

    @property
    def outbox(self) -> Path:
        """The sandbox's output folder; emptied by the parent after every run."""
        return self.outbox_path or self.path / "out"

    @property
    def log(self) -> Path:
        """The kernel process's own stdout/stderr (never shown unredacted)."""
        return self.path / "kernel.log"

    @property
    def passwd(self) -> Path:
        return self.path / "etc" / "passwd"

    @property
    def group(self) -> Path:
        return self.path / "etc" / "group"

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def over_cap(self, limits: Limits) -> str:
        """Which writable place of the sandbox passed its cap, in words; "" when none.
        Checked while it runs, so a sandbox cannot fill the host's disk before its run
        ends (the output cap is checked again, exactly, when the outputs are copied)."""
        for what, used, cap in (
                ("the kernel log", _size(self.log), limits.log_bytes),
                ("the IPC folder", _du(self.ipc), limits.ipc_bytes),
                ("the output folder", _du(self.outbox), limits.output_bytes)):
            if used > cap:
                return f"{what} passed its cap of {cap} bytes"
        return ""


def outbox_folder() -> Path:
    """An outbox that survives its sandbox (a crashed run's checkpoints still come out);
    removed by ``remove_outbox``, or as stale once this process is gone."""
    holder = Path(tempfile.mkdtemp(prefix="snb-", dir=base_dir()))
    (holder / PARENT).write_text(str(os.getpid()))
    (holder / "out").mkdir()
    return holder / "out"


def remove_outbox(outbox: Path) -> None:
    shutil.rmtree(outbox.parent, ignore_errors=True)


def _size(path: Path) -> int:
    try:
        return os.lstat(path).st_size
    except OSError:
        return 0


def _du(root: Path, limit: int = 100_000) -> int:
    """Logical bytes under ``root`` (links not followed; stops counting after ``limit``
    entries, which the output vetting refuses anyway)."""
    total, seen = 0, 0
    for folder, dirs, files in os.walk(root):
        for name in files + dirs:
            seen += 1
            total += _size(Path(folder) / name)
        if seen > limit:
            break
    return total


def _collect_stale(base: Path) -> None:
    """Remove runtime folders whose parent process is gone (it was killed before cleanup)."""
    for folder in base.glob("snb-*"):
        with contextlib.suppress(OSError, ValueError):
            owner = folder.stat().st_uid
            if owner != os.geteuid() and not (os.geteuid() == 0 and (owner == SANDBOX_UID or 0 <= (
                    owner - DEDICATED_UID_BASE) < DEDICATED_UID_COUNT)):
                continue  # another user's; a root parent hands its folders to the sandbox
            pid = int((folder / PARENT).read_text())
            if not Path(f"/proc/{pid}").exists():
                shutil.rmtree(folder)
