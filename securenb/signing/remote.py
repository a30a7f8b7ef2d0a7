"""Kernel to server: ask the securenb server extension to sign or verify.

The kernel is not a vault (any cell can read its memory), so when a Jupyter
server with the securenb extension started it, the kernel never unlocks a key:
it sends the request, the server signs with keys only it holds.

- Where: the extension listens on a Unix socket in a private (0700) folder and
  names it in ``<jupyter runtime dir>/securenb-signer-<server pid>.json``
  (0600). A kernel finds its server's pid in ``JPY_PARENT_PID``. Neither the
  network, the browser (no CSRF, no DNS rebinding) nor a sandboxed kernel
  (whose mounts do not include the runtime folders) can reach it.
- Who: each request carries an HMAC-SHA256 under the kernel's own connection
  key (from its connection file), which the server also holds. The server
  thereby knows which kernel asks (recorded in the audit log), and refuses
  requests from anything that cannot read that kernel's connection file.
  A time stamp and a nonce stop replays.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import os
import secrets
import socket
import struct
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from securenb.core.keys import PublicKey
from securenb.errors import SecurenbError, VerificationError
from securenb.signing.result import SignResult, Verification
from securenb.signing.service import SignRequest, pin

DISCOVERY_PREFIX = "securenb-signer-"
HEADER_KERNEL = "X-Securenb-Kernel"
HEADER_TIME = "X-Securenb-Time"
HEADER_NONCE = "X-Securenb-Nonce"
HEADER_MAC = "X-Securenb-Mac"
MAX_SKEW_S = 120
TIMEOUT_S = 3600.0  # hashing a very large model takes a while


def kernel_record_signer(root: Path) -> RemoteSigner | None:
    """Registered by the kernel magics: records go through the server, else the agent."""
    return RemoteSigner.for_this_kernel() or RemoteSigner.for_agent(root)


def agent_socket(root: Path) -> Path:
    """Where the local agent of the workspace at ``root`` listens: a 0700 folder of the user's."""
    base = Path(os.environ.get("XDG_RUNTIME_DIR") or "/tmp")  # noqa: S108 - a 0700 folder in it
    name = hashlib.sha256(str(Path(root).resolve()).encode()).hexdigest()[:16]
    return base / f"securenb-agent-{os.getuid()}" / f"{name}.sock"


def discovery_file(server_pid: int | str, runtime_dir: Path | None = None) -> Path:
    """Where a server with pid ``server_pid`` names its signer socket."""
    if runtime_dir is None:
        from jupyter_core.paths import jupyter_runtime_dir

        runtime_dir = Path(jupyter_runtime_dir())
    return Path(runtime_dir) / f"{DISCOVERY_PREFIX}{server_pid}.json"


def request_mac(key: bytes, kernel_id: str, target: str, timestamp: str, nonce: str,
                body: bytes) -> str:
    """HMAC-SHA256 over everything that makes a request what it is."""
    message = "\n".join(["securenb-signer-v1", kernel_id, target, timestamp, nonce,
                         hashlib.sha256(body).hexdigest()]).encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class KernelIdentity:
    """A kernel's id and connection (HMAC) key, as in its connection file."""

    kernel_id: str
    key: bytes

    @classmethod
    def from_connection_file(cls, path: Path) -> KernelIdentity:
        """Jupyter servers name connection files ``kernel-<id>.json``."""
        path = Path(path)
        kernel_id = path.stem.removeprefix("kernel-")
        try:
            key = str(json.loads(path.read_text())["key"]).encode()
        except (OSError, ValueError, KeyError) as exc:
            raise SecurenbError(f"{path}: cannot read the kernel's connection key "
                                f"({exc})") from None
        return cls(kernel_id, key)


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, socket_path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._socket_path = socket_path

    def connect(self) -> None:
        """Connect, then make sure the listening process is this user's: in a shared folder
        such as /tmp another user could have put a socket where the agent's goes."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._socket_path)
            creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        except OSError:
            sock.close()
            raise
        _, uid, _ = struct.unpack("3i", creds)
        if uid != os.getuid():
            sock.close()
            raise SecurenbError(f"{self._socket_path}: served by uid {uid}, not by this user "
                                f"(uid {os.getuid()}); refusing to send it anything")
        self.sock = sock


@dataclass(frozen=True)
class RemoteSigner:
    """The signer of the Jupyter server that started this kernel."""

    socket_path: Path
    kernel: KernelIdentity | None  # None: the local agent, which checks the peer's uid

    @classmethod
    def discover(cls, kernel: KernelIdentity,
                 environ: Mapping[str, str] = os.environ) -> RemoteSigner | None:
        """The signer of the Jupyter server that started this kernel; None if no server.

        A kernel started by a Jupyter server that does not run the extension
        must not sign by itself (its key would be in the kernel): refused.
        """
        pid = environ.get("JPY_PARENT_PID", "")
        if not pid.isdigit():
            return None
        found = discovery_file(pid)
        try:
            data = json.loads(found.read_text())
        except (OSError, ValueError):
            if (found.parent / f"jpserver-{pid}.json").exists():
                raise SecurenbError(
                    "this kernel was started by a Jupyter server without the securenb "
                    "extension; enable it (jupyter server extension enable securenb.server) "
                    "so that keys stay in the server, not in the kernel") from None
            return None
        socket_path = Path(str(data.get("socket", "")))
        if not socket_path.is_socket():
            raise SecurenbError(f"{found}: the securenb signer socket {socket_path} is gone; "
                                "restart the Jupyter server")
        return cls(socket_path, kernel)

    @classmethod
    def for_this_kernel(cls) -> RemoteSigner | None:
        """The signer of the Jupyter server that started this (ipykernel) kernel, if any."""
        try:
            from ipykernel.connect import get_connection_file

            connection_file = Path(get_connection_file())
        except (ImportError, RuntimeError):
            return None  # not an ipykernel (terminal IPython): no server
        return cls.discover(KernelIdentity.from_connection_file(connection_file))

    @classmethod
    def for_agent(cls, root: Path) -> RemoteSigner | None:
        """The local agent holding the keys of the workspace at ``root``, if one runs."""
        path = agent_socket(root)
        return cls(path, None) if path.is_socket() else None

    @property
    def label(self) -> str:
        who = "server signer" if self.kernel is not None else "agent"
        return f"the securenb {who} ({self.socket_path})"

    def sign(self, request: SignRequest) -> SignResult:
        return SignResult.from_json(self._call("/v1/sign", request.to_json()))

    def attest(self, root: Path, statement: dict[str, Any]) -> dict[str, Any]:
        """The server validates, signs with the record key, stores and audits ``statement``."""
        return self._call("/v1/attest", {"root": str(root), "statement": statement})

    def audit(self, root: Path, action: str, subject: str,
              details: dict[str, Any]) -> dict[str, Any]:
        """The server appends the entry to the log (it signs the checkpoint); its receipt."""
        return self._call("/v1/audit", {"root": str(root), "action": action,
                                         "subject": subject, "details": details})

    def gate(self, artifact: str, record: bool = True) -> dict[str, Any]:
        """The server's gate verdict (``GateVerdict.to_json``) for ``artifact`` (an absolute
        path, or ``sha256:<hex>`` of a recorded one), recorded by the server unless not
        ``record``."""
        key = "digest" if artifact.lower().startswith("sha256:") else "path"
        return self._call("/v1/gate", {key: artifact, "record": record})

    def verify(self, path: Path, signature: Path | None = None,
               keys: Sequence[PublicKey] = (), allow_failed: bool = False) -> Verification:
        """The signer's verdict; ``keys`` (``--key``) pin the signer there and here.

        The keys travel as PEM (the signer never opens a file or reads a
        variable a kernel names), and the verdict is pinned again on this side,
        so a signer that ignored them cannot pass another key's signature.
        """
        body = {"path": str(path), "signature": str(signature) if signature else None,
                "keys": [key.pem().decode() for key in keys], "allowFailed": allow_failed}
        return pin(Verification.from_json(self._call("/v1/verify", body)), keys)

    def _call(self, target: str, payload: dict[str, Any]) -> dict[str, Any]:
        body = json.dumps(payload).encode()
        timestamp, nonce = str(int(time.time())), secrets.token_hex(16)
        headers = {"Content-Type": "application/json"}
        if self.kernel is not None:
            headers.update({
                HEADER_KERNEL: self.kernel.kernel_id,
                HEADER_TIME: timestamp,
                HEADER_NONCE: nonce,
                HEADER_MAC: request_mac(self.kernel.key, self.kernel.kernel_id, target,
                                        timestamp, nonce, body),
            })
        connection = _UnixConnection(str(self.socket_path), TIMEOUT_S)
        try:
            connection.request("POST", target, body=body, headers=headers)
            response = connection.getresponse()
            text = response.read()
        except OSError as exc:
            raise SecurenbError(f"the securenb signer at {self.socket_path} failed: "
                                f"{exc}") from None
        finally:
            connection.close()
        try:
            data = json.loads(text)
        except ValueError:
            raise SecurenbError(f"the securenb signer answered {response.status} "
                                f"without JSON: {text[:200]!r}") from None
        if response.status != 200:
            error = VerificationError if data.get("exit_code") == 1 else SecurenbError
            who = "server" if self.kernel is not None else "agent"
            raise error(f"the securenb {who} refused: {data.get('error', response.reason)}")
        return data  # type: ignore[no-any-return]
