"""The server's signer: keys live here, never in the kernels.

Keys are unlocked once, when the extension loads; the passphrase variables are
then removed from the server's environment, so the kernels it starts later do
not inherit them, and overwritten in its original environment block
(``/proc/<pid>/environ``), and the server is made non-dumpable
(securenb.core.vault), so a cell cannot read them back. All work runs on
one worker thread: the workspace's SQLite connection belongs to it, and
hashing a large model does not block the server's event loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from securenb.core.attest import SLSA_PROVENANCE_PREDICATE
from securenb.core.attest.schemas import kind_of
from securenb.core.keys import DEFAULT_PASSPHRASE_ENV, PrivateKey, PublicKey
from securenb.core.keys.providers import split_ref
from securenb.core.keys.purposes import RECORD_KEY
from securenb.core.vault import make_undumpable, scrub_environment
from securenb.core.workspace import Workspace
from securenb.errors import SecurenbError, WorkspaceError
from securenb.server import kernel_records
from securenb.signing import service
from securenb.signing.result import Via
from securenb.signing.service import SignRequest

T = TypeVar("T")
_MAX_PINNED_KEYS = 16


class SignerService:
    """Signs and verifies for one Jupyter server, inside its root folder only."""

    via: Via = "server"  # what the records name as the signer (the agent says "agent")

    def __init__(self, root_dir: Path, log: logging.Logger,
                 passphrase: str | None = None) -> None:
        """Unlock the keys now: with ``passphrase`` (the agent reads it from a descriptor or
        a prompt), else from the policy's passphrase variable, which is then scrubbed."""
        self.root = Path(root_dir).resolve()
        self.log = log
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="securenb-signer")
        self._keys: dict[str, PrivateKey] = {}
        self._problem: str | None = None
        self._workspace: Workspace | None = None
        env = DEFAULT_PASSPHRASE_ENV
        try:
            self._workspace = Workspace.find(self.root)
            env = self._workspace.policy.signing.passphrase_env
            if passphrase is not None:
                _unlock_with(self._workspace, passphrase)
            self._workspace.signer()  # unlock now, while the passphrase is still here
            self._workspace.purpose_signer("release")
        except SecurenbError as exc:
            self._problem = str(exc)
            log.warning("securenb: server-side signing unavailable: %s", exc)
        self._passphrase = passphrase if passphrase is not None else os.environ.get(env)
        scrub_environment({env, DEFAULT_PASSPHRASE_ENV})
        try:
            make_undumpable()
        except OSError as exc:
            log.warning("securenb: cannot make the server non-dumpable: %s", exc)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def sign(self, request: SignRequest, requester: dict[str, str]) -> dict[str, Any]:
        return await self._run(self._sign, request, requester)

    async def verify(self, path: str, signature: str | None, requester: dict[str, str],
                     keys: Any = (), *, allow_failed: bool = False) -> dict[str, Any]:
        """``keys``: PEM public keys that pin the signer (``--key``, sent by the client);
        ``allow_failed``: a failed run's output verifies (securenb.runs.verify)."""
        return await self._run(self._verify, path, signature, requester, keys, allow_failed)

    async def attest(self, root: str, statement: Any, requester: dict[str, str],
                     kernel: bool = False) -> dict[str, Any]:
        """``kernel``: a kernel's statement, admitted as securenb.server.kernel_records says."""
        return await self._run(self._attest, root, statement, requester, kernel)

    async def audit(self, root: str, action: str, subject: str, details: Any,
                    requester: dict[str, str]) -> dict[str, Any]:
        return await self._run(self._audit, root, action, subject, details, requester)

    async def gate(self, target: str, record: bool, requester: dict[str, str]
                   ) -> dict[str, Any]:
        """``securenb.gate.evaluate`` over this server's records, recorded with its key:
        for a kernel, whose own verdict is never signed (securenb.server.kernel_records)."""
        return await self._run(self._gate, target, record, requester)

    async def call(self, fn: Callable[[Workspace], T]) -> T:
        """Run ``fn(workspace)`` on the worker thread (the API's reads and records)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(self._ws()))

    async def _run(self, fn: Any, *args: Any) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        result: dict[str, Any] = await loop.run_in_executor(self._executor, fn, *args)
        return result

    # -- on the worker thread -------------------------------------------------------
    def _ws(self) -> Workspace:
        if self._workspace is None:
            raise WorkspaceError(f"server-side signing is unavailable: {self._problem}")
        return self._workspace

    def _sign(self, request: SignRequest, requester: dict[str, str]) -> dict[str, Any]:
        ws = self._ws()
        inside = {
            "path": str(self.inside(request.path)),
            "signature": str(self.inside(request.signature)) if request.signature else None,
            "certificate": str(self.inside(request.certificate)) if request.certificate else None,
            "chain": tuple(str(self.inside(c)) for c in request.chain),
        }
        checked = SignRequest(**{**request.to_json(), **inside})
        key = None if request.sigstore else self._key(ws, request.key)
        result = service.sign(ws, checked, key=key, via=self.via, requester=requester)
        self.log.info("securenb: signed %s for %s", result.path, requester)
        return result.to_json()

    def _verify(self, path: str, signature: str | None, requester: dict[str, str],
                keys: Any, allow_failed: bool) -> dict[str, Any]:
        pins = _pinned(keys)
        ws = self._ws()
        sig = self.inside(signature) if signature else None
        result = service.verify(ws, self.inside(path), signature=sig, keys=pins,
                                allow_failed=allow_failed)
        self.log.info("securenb: verified %s for %s: %s", result.path, requester, result.verified)
        return result.to_json()

    def _records_of(self, root: str) -> Workspace:
        """The server's workspace, if the kernel's records belong to it."""
        ws = self._ws()
        if Path(root).resolve() != ws.root:
            raise SecurenbError(f"{root}: not the workspace of this server ({ws.root}); "
                                "its records cannot be signed here")
        return ws

    def _attest(self, root: str, statement: Any, requester: dict[str, str],
                kernel: bool) -> dict[str, Any]:
        """Sign a kernel's statement with the record key: validated first, like every record."""
        ws = self._records_of(root)
        if not isinstance(statement, dict) or not isinstance(statement.get("predicate"), dict) \
                or not isinstance(statement.get("predicateType"), str):
            raise SecurenbError("attest request: 'statement' must be an in-toto statement")
        kind = statement["predicateType"]
        if kind_of(kind) is None and kind != SLSA_PROVENANCE_PREDICATE:
            raise SecurenbError(f"attest request: predicate type {kind!r} is not a securenb "
                                "record (the record key signs only those, schema-checked)")
        if kernel:
            statement = kernel_records.admit(ws, self.inside, statement, requester)
        record = ws.attest(statement, requester=requester)
        self.log.info("securenb: attested %s for %s", record.predicate_type, requester)
        return record.to_json()

    def _audit(self, root: str, action: str, subject: str, details: Any,
               requester: dict[str, str]) -> dict[str, Any]:
        ws = self._records_of(root)
        if not isinstance(details, dict):
            raise SecurenbError("audit request: 'details' must be an object")
        receipt = ws.audit(action, subject, {**details, **requester})
        return {"index": receipt.index, "count": receipt.count,
                "checkpoint": receipt.head.note.to_text()}

    def _gate(self, target: str, record: bool, requester: dict[str, str]) -> dict[str, Any]:
        from securenb.gate import evaluate

        ws = self._ws()
        artifact: Path | str = target if target.startswith("sha256:") else self.inside(target)
        verdict = evaluate(ws, artifact, record=record, requester=requester)
        self.log.info("securenb: gate %s for %s: %s", verdict.artifact, requester,
                      verdict.outcome)
        return verdict.to_json()

    def inside(self, raw: str) -> Path:
        """``raw`` (absolute, or relative to the root) resolved, if inside the root."""
        path = Path(raw).expanduser()
        resolved = (path if path.is_absolute() else self.root / path).resolve()
        if not resolved.is_relative_to(self.root):
            raise SecurenbError(f"{raw}: outside the server's root folder {self.root}; refused")
        return resolved

    def _key(self, ws: Workspace, ref: str | None) -> PrivateKey:
        """The policy's release key (unlocked at start) or a key store release key."""
        if ref is None or ref == ws.policy.signing.key:
            return ws.purpose_signer("release")
        scheme, name = split_ref(ref)
        if scheme is not None:
            raise SecurenbError(f"key {ref!r}: the server signs only with the workspace's "
                                "key store keys (NAME), never with key files named by a kernel")
        if name not in self._keys:
            if self._passphrase is None:
                raise SecurenbError(f"key {name!r}: the server was started without "
                                    f"${ws.policy.signing.passphrase_env}; it cannot unlock it")
            ws.check_purpose(name, "release")
            key = ws.keystore.load(name, self._passphrase)
            ws.check_key_material(key, "release", name)
            self._keys[name] = key
        return self._keys[name]


def _pinned(keys: Any) -> Sequence[PublicKey]:
    """The PEM public keys of a request; a reference (file, variable) is refused, never opened."""
    if not isinstance(keys, list | tuple) or not all(isinstance(k, str) for k in keys) \
            or len(keys) > _MAX_PINNED_KEYS:
        raise SecurenbError(f"verify request: 'keys' must be a list of at most "
                            f"{_MAX_PINNED_KEYS} PEM public keys")
    return [PublicKey.from_pem(k.encode(), f"verify request: keys[{i}]")
            for i, k in enumerate(keys)]


def _unlock_with(ws: Workspace, passphrase: str) -> None:
    """Unlock the record key and the policy's release key (if a key store key) with it."""
    ws.adopt_signer(ws.keystore.load(RECORD_KEY, passphrase))
    release = ws.key_ref("release")
    if split_ref(release)[0] is None:
        ws.check_purpose(release, "release")
        ws.adopt_signer(ws.keystore.load(release, passphrase), "release", release)
