"""The per-kernel runtime folder shared with the sandbox: connection file, IPC sockets.

ZMQ talks over Unix sockets in this folder, so a sandbox needs no network at
all. The path is kept short because a socket path may not exceed 107 bytes.
The folder also holds the sandbox's ``/etc/passwd`` and ``/etc/group`` (one
unprivileged user) and the ``inbox`` where the parent stages declared inputs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from securenb.isolation.errors import IsolationError
from securenb.isolation.spec import SANDBOX_HOME, SANDBOX_UID

_MAX_SOCKET_PATH = 100
PARENT = "parent.pid"


def base_dir() -> Path:
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and Path(xdg).is_dir() and os.access(xdg, os.W_OK):
        return Path(xdg)
    return Path(tempfile.gettempdir())


@dataclass(frozen=True)
class RuntimeDir:
    path: Path

    @classmethod
    def create(cls, owner: int | None = None) -> RuntimeDir:
        """A fresh 0700 folder; ``owner`` (a uid) when the sandbox runs as another user."""
        _collect_stale(base_dir())
        path = Path(tempfile.mkdtemp(prefix="snb-", dir=base_dir()))
        if len(str(path / "ipc" / "k-99")) > _MAX_SOCKET_PATH:
            shutil.rmtree(path)
            raise IsolationError(f"{path}: too long for IPC socket paths; set XDG_RUNTIME_DIR")
        rt = cls(path)
        for sub in (rt.ipc, rt.inbox, path / "etc"):
            sub.mkdir()
        uid = SANDBOX_UID
        rt.passwd.write_text(
            f"sandbox:x:{uid}:{uid}:sandbox:{SANDBOX_HOME}:/usr/sbin/nologin\n"
            "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
        )
        rt.group.write_text(f"sandbox:x:{uid}:\nnogroup:x:65534:\n")
        (path / PARENT).write_text(str(os.getpid()))
        if owner is not None:
            for item in (path, rt.ipc, rt.inbox):
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


def _collect_stale(base: Path) -> None:
    """Remove runtime folders whose parent process is gone (it was killed before cleanup)."""
    for folder in base.glob("snb-*"):
        with contextlib.suppress(OSError, ValueError):
            mine = {os.geteuid(), SANDBOX_UID} if os.geteuid() == 0 else {os.geteuid()}
            if folder.stat().st_uid not in mine:  # handed to the sandbox user by a root parent
                continue
            pid = int((folder / PARENT).read_text())
            if not Path(f"/proc/{pid}").exists():
                shutil.rmtree(folder)
