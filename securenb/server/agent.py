"""The local signing agent: the server's signer when there is no Jupyter server (as ssh-agent).

Papermill, a terminal IPython, nbclient or a plain ``jupyter kernel`` have no
securenb server to hold the keys. ``securenb agent start`` unlocks the
workspace's record and release keys once (passphrase from a descriptor or a
prompt, never from an environment variable), makes itself non-dumpable and
listens on a Unix socket in a 0700 folder of the user's
(``$XDG_RUNTIME_DIR/securenb-agent-<uid>/``, else ``/tmp``); it accepts only
peers of its own uid (``SO_PEERCRED``). Kernels and ``%sign_model`` find it by
the workspace's path (securenb.signing.remote.agent_socket). After
``idle_s`` without a request it exits, and the keys are gone with it (the
lock timeout). The protocol and the work are the server's
(securenb.server.kernel_socket, securenb.server.signer).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import stat
import struct
import time
from pathlib import Path

from tornado.httpserver import HTTPServer
from tornado.ioloop import IOLoop, PeriodicCallback
from tornado.netutil import bind_unix_socket
from tornado.web import Application, RequestHandler

from securenb.core.vault import make_undumpable
from securenb.errors import SecurenbError
from securenb.server.kernel_socket import KernelSocket, _KernelHandler
from securenb.server.signer import SignerService
from securenb.signing.remote import agent_socket

_MAX_BODY = 1 << 20


def private_folder(folder: Path) -> None:
    """Create ``folder`` 0700, or refuse one that another user owns or others can enter."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = os.lstat(folder)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise SecurenbError(f"{folder}: not a private folder of this user (mode "
                            f"{oct(st.st_mode & 0o777)}, owner {st.st_uid}); refusing it")


class AgentSigner(SignerService):
    """The server's signer, whose records say truthfully that the agent signed."""

    via = "agent"


class AgentSocket(KernelSocket):
    """The kernel socket's handlers, for any process of this user (checked by SO_PEERCRED)."""

    def __init__(self, signer: SignerService, path: Path, log: logging.Logger) -> None:
        super().__init__(signer, None, log)
        self.path = path
        self.last_request = time.monotonic()

    @property
    def socket_path(self) -> Path:
        return self.path

    def start(self) -> None:
        private_folder(self.path.parent)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # a socket left by an agent that was killed
        try:
            sock = bind_unix_socket(str(self.path), mode=0o600)
        except OSError as exc:
            raise SecurenbError(f"{self.path}: cannot listen ({exc}); set XDG_RUNTIME_DIR to "
                                "a shorter private folder") from None
        app = Application([(r"/v1/(sign|verify|attest|audit)", _KernelHandler,
                            {"owner": self})])
        self._server = HTTPServer(app, max_body_size=_MAX_BODY)
        self._server.add_socket(sock)
        self.path.with_suffix(".pid").write_text(str(os.getpid()))
        self.log.info("securenb agent: listening on %s", self.path)

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
        for path in (self.path, self.path.with_suffix(".pid")):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def authenticate(self, handler: RequestHandler) -> str:
        """The peer's pid, if it runs as this user; the kernel's HMAC is not needed here."""
        stream = handler.request.connection.stream  # type: ignore[union-attr]
        creds = stream.socket.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                         struct.calcsize("3i"))
        pid, uid, _ = struct.unpack("3i", creds)
        if uid != os.getuid():
            raise PermissionError(f"peer uid {uid} is not this agent's user")
        self.last_request = time.monotonic()
        return f"pid:{pid}"

    def requester(self, who: str) -> dict[str, str]:
        """A process of this user (any, not only a kernel): its pid."""
        return {"process": who}


def run(root: Path, passphrase: str, idle_s: float, log: logging.Logger) -> None:
    """Serve until ``idle_s`` pass without a request, or SIGTERM/SIGINT."""
    make_undumpable()  # before the keys are in memory
    signer = AgentSigner(root, log, passphrase=passphrase)
    del passphrase
    ws = signer._ws()  # refuses to start without unlocked keys
    agent = AgentSocket(signer, agent_socket(ws.root), log)
    loop = IOLoop.current()
    agent.start()

    def idle() -> None:
        if time.monotonic() - agent.last_request > idle_s:
            log.info("securenb agent: idle for %ss, locking (exiting)", idle_s)
            loop.stop()

    checker = PeriodicCallback(idle, min(1000.0, idle_s * 250))
    checker.start()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: loop.add_callback_from_signal(loop.stop))
    try:
        loop.start()
    finally:
        checker.stop()
        agent.stop()
        signer.close()
