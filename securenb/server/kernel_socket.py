"""The Unix socket kernels reach the signer through (protocol: securenb.signing.remote).

Besides signing, it evaluates the gate (``gate``: the server's verdict over its
records, signed with its key; a kernel's own is never signed) and releases
dataset keys (``dataset-check``, ``dataset-stage``: securenb.server.datasets)
to the kernel that asks, for its users' roles. A
request counts as made by every user who opened the kernel: each must hold the
RBAC action it takes (securenb.server.kernel_access), and the record key signs
only what kernels may record (securenb.server.kernel_records). The kernels of a
root server start without the capabilities that read this process's memory
(securenb.server.deprivilege).

It lives in a fresh 0700 folder (``mkdtemp``) and is named, for kernels, in a
0600 file of the Jupyter runtime folder. A request must carry an HMAC under the
connection key of a kernel this server runs, a time stamp within two minutes
and a nonce not seen before.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from tornado.httpserver import HTTPServer
from tornado.netutil import bind_unix_socket
from tornado.web import Application, RequestHandler

from securenb.core.fsutil import atomic_write_bytes
from securenb.data.errors import AccessDenied
from securenb.errors import SecurenbError
from securenb.server import deprivilege, kernel_records
from securenb.server.datasets import DatasetRelease
from securenb.server.kernel_access import Refused
from securenb.server.signer import SignerService
from securenb.signing.remote import (
    HEADER_KERNEL,
    HEADER_MAC,
    HEADER_NONCE,
    HEADER_TIME,
    MAX_SKEW_S,
    discovery_file,
    request_mac,
)
from securenb.signing.service import SignRequest

_MAX_BODY = 1 << 20
_DIGEST = re.compile(r"sha256:[0-9a-f]{6,64}", re.IGNORECASE)  # a prefix, as %gate takes


def _gate_target(data: Any) -> str:
    """A gate request's artifact: ``digest`` (sha256:<64 hex>) or else ``path``."""
    digest = data.get("digest")
    if digest is None:
        return str(data["path"])
    if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
        raise SecurenbError("gate request: 'digest' must be sha256:<hex>, 6 to 64 digits")
    return digest


class KernelSocket:
    """Serve the signer to this server's kernels on a private Unix socket."""

    kernel_rules = True  # records only as kernel_records allows (the agent serves the CLI too)

    def __init__(self, signer: SignerService, kernel_manager: Any, log: logging.Logger,
                 authorizer: Any = None) -> None:
        """``authorizer``: the server's (its roles decide dataset key releases); the KEK
        is loaded here, before any kernel starts."""
        self.signer, self.kernel_manager, self.log = signer, kernel_manager, log
        self.datasets = DatasetRelease(signer, authorizer, log)
        self.access = self.datasets.access
        deprivilege.install(kernel_manager, log)  # before any kernel starts
        self._nonces: dict[str, float] = {}
        self._server: HTTPServer | None = None
        self.folder: Path | None = None
        self.discovery = discovery_file(os.getpid())

    @property
    def socket_path(self) -> Path:
        assert self.folder is not None
        return self.folder / "signer.sock"

    def start(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="securenb-"))  # mode 0700
        sock = bind_unix_socket(str(self.socket_path), mode=0o600)
        app = Application([(r"/v1/(sign|verify|attest|audit|gate|dataset-check|dataset-stage)",
                            _KernelHandler,
                            {"owner": self})])
        self._server = HTTPServer(app, max_body_size=_MAX_BODY)
        self._server.add_socket(sock)
        record = {"socket": str(self.socket_path), "pid": os.getpid()}
        atomic_write_bytes(self.discovery, json.dumps(record).encode(), mode=0o600)
        self.log.info("securenb: kernel signer listening on %s", self.socket_path)

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
        with contextlib.suppress(FileNotFoundError):
            self.discovery.unlink()
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
        self.datasets.close()

    def authenticate(self, handler: RequestHandler) -> str:
        """The id of the kernel that sent this request, or an error saying why not."""
        headers = handler.request.headers
        kernel_id, stamp = headers.get(HEADER_KERNEL, ""), headers.get(HEADER_TIME, "")
        nonce, mac = headers.get(HEADER_NONCE, ""), headers.get(HEADER_MAC, "")
        if kernel_id not in self.kernel_manager:
            raise PermissionError(f"unknown kernel {kernel_id!r}")
        key = self.kernel_manager.get_kernel(kernel_id).session.key
        if not key:
            raise PermissionError(f"kernel {kernel_id} has no connection key")
        now = time.time()
        if not stamp.isdigit() or abs(now - int(stamp)) > MAX_SKEW_S:
            raise PermissionError("request time stamp missing or too old")
        expected = request_mac(key, kernel_id, handler.request.path, stamp, nonce,
                               handler.request.body)
        if not hmac.compare_digest(expected, mac):
            raise PermissionError(f"bad request signature for kernel {kernel_id}")
        self._nonces = {n: t for n, t in self._nonces.items() if now - t <= 2 * MAX_SKEW_S}
        if len(nonce) < 16 or nonce in self._nonces:
            raise PermissionError("request nonce missing or replayed")
        self._nonces[nonce] = now
        return kernel_id

    def requester(self, who: str) -> dict[str, str]:
        """Who asked, as the records name it (``authenticate``'s answer)."""
        return {"kernel": who}


class _KernelHandler(RequestHandler):
    def initialize(self, owner: KernelSocket) -> None:
        self.owner = owner

    async def post(self, action: str) -> None:
        try:
            kernel_id = self.owner.authenticate(self)
        except PermissionError as exc:
            self.owner.log.warning("securenb: refused a signer request: %s", exc)
            return self._error(403, str(exc), 2)
        try:
            data = json.loads(self.request.body)
            if action in ("dataset-check", "dataset-stage"):
                result = await self._dataset(action, kernel_id, data)
            else:
                users = await self._allowed(action, kernel_id, data)
                requester = self.owner.requester(kernel_id)
                if users:  # with RBAC: everyone who opened the kernel
                    requester["users"] = ", ".join(users)
                result = await self._serve(action, data, requester)
        except SecurenbError as exc:
            return self._error(403 if isinstance(exc, AccessDenied) else 400, str(exc),
                               exc.exit_code)
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            return self._error(400, f"malformed request ({exc})", 2)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(result))

    async def _allowed(self, action: str, kernel_id: str, data: Any) -> tuple[str, ...]:
        """The kernel's users, if they may take ``action``; each refusal audited."""
        access, need, resource = self.owner.access, None, ""
        try:
            if action in ("sign", "verify"):
                need, resource = action, str(data["path"])
            elif action == "gate":
                need, resource = action, _gate_target(data)
            elif action == "attest" and self.owner.kernel_rules:
                need, resource = kernel_records.attest_need(data["statement"])
            elif action == "audit" and self.owner.kernel_rules:
                resource = str(data["action"])
                need = kernel_records.audit_need(resource)
            return access.require(kernel_id, need, resource)
        except Refused as exc:
            await access.deny(kernel_id, need or action, resource, exc)
            raise
        except kernel_records.NotAKernelRecord as exc:
            refused = Refused(str(exc), access.who(access.names(kernel_id)))
            await access.deny(kernel_id, "record", resource, refused)
            raise refused from None

    async def _serve(self, action: str, data: Any, requester: dict[str, str]) -> Any:
        signer = self.owner.signer
        if action == "sign":
            return await signer.sign(SignRequest.from_json(data), requester)
        if action == "attest":
            return await signer.attest(str(data["root"]), data["statement"], requester,
                                       kernel=self.owner.kernel_rules)
        if action == "gate":
            record = data.get("record", True)
            if not isinstance(record, bool):
                raise TypeError("'record' must be true or false")
            return await signer.gate(_gate_target(data), record, requester)
        if action == "audit":
            return await signer.audit(str(data["root"]), str(data["action"]),
                                      str(data["subject"]), data.get("details", {}), requester)
        return await signer.verify(str(data["path"]), data.get("signature"), requester,
                                   data.get("keys", ()),
                                   allow_failed=data.get("allowFailed") is True)

    async def _dataset(self, action: str, kernel_id: str, data: Any) -> dict[str, Any]:
        path, role = str(data["path"]), data.get("role")
        if role is not None and not isinstance(role, str):
            raise TypeError("'role' must be a string or null")
        if action == "dataset-check":
            return await self.owner.datasets.check(kernel_id, path, role)
        return await self.owner.datasets.stage(kernel_id, path, role, str(data["folder"]))

    def _error(self, status: int, message: str, exit_code: int) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"error": message, "exit_code": exit_code}))
