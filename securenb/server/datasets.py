"""Dataset key release: the server unwraps, the kernel gets only a one-time copy's key.

The kernel is not a vault (any cell can read its memory), so when a server with
the extension started it, a kernel never holds a KEK or a dataset's data key.
``%%secure_train --inputs data=x.enc`` asks the server (kernel socket,
``/v1/dataset-check`` before any sandbox starts, ``/v1/dataset-stage`` into the
sandbox's inbox); the server:

- confines the dataset to its root folder (no ``..``, no symlink on the way,
  its manifest read without following a link);
- decides for the kernel's users: with ``SecurenbAuthorizer`` (RBAC on), every
  user who opened the kernel through this server must hold ``securenb:decrypt``
  and the role the manifest allows (the role asked for, if any); without it,
  jupyter_server lets every authenticated user do everything, and the role the
  kernel names is taken as the local SDK takes it;
- unwraps with the KEK it loaded at start (``$SECURENB_KEK_URI``, else
  ``env:SECURENB_KEK``; the variables holding KEKs are scrubbed from its
  environment before any kernel starts, so kernels do not inherit them);
- decrypts as a stream and re-encrypts under a fresh one-time key into the
  sandbox's inbox (a real folder of this user's, ``<runtime>/snb-*/inbox/datasets``);
  the kernel gets that copy's path and key, which open nothing else.

Every denial is an audit entry ``access.deny`` naming the user, the action
(``decrypt``), the dataset and the kernel; every release is ``data.release``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from securenb.core.vault import scrub_environment
from securenb.data.data_key import DataKey
from securenb.data.dataset import check_access
from securenb.data.envelope import unwrap_data_key
from securenb.data.errors import AccessDenied, DataFormatError
from securenb.data.kek import DEFAULT_KEK_URI, KeyEncryptionKey, as_kek
from securenb.data.manifest import DatasetFile, parse_sidecar, sidecar_path
from securenb.errors import KeyError_, SecurenbError
from securenb.isolation.runtime import base_dir
from securenb.isolation.transfer import DatasetInput, stage_dataset
from securenb.server.kernel_access import KernelAccess, Refused
from securenb.server.signer import SignerService

KEK_URI_ENV = "SECURENB_KEK_URI"
KEK_ENV = DEFAULT_KEK_URI.removeprefix("env:")  # SECURENB_KEK
_MANIFEST_LIMIT = 1 << 20
_INBOX = ("inbox", "datasets")  # <base_dir>/snb-*/inbox/datasets (securenb.isolation.runtime)


@dataclass(frozen=True)
class Grant:
    """Who a release is for: the kernel, its users, and the role the manifest allowed."""

    kernel: str
    users: tuple[str, ...]
    role: str | None


class DatasetRelease:
    """Unwraps dataset keys for this server's kernels; the KEK never leaves this process."""

    def __init__(self, signer: SignerService, authorizer: Any, log: logging.Logger) -> None:
        """Load the KEK now, then scrub the variables that held it (before any kernel starts)."""
        self.signer, self.log = signer, log
        self.root = signer.root
        self.access = KernelAccess(signer, authorizer, log)
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="securenb-data")
        self._keks: dict[str, KeyEncryptionKey] = {}
        self._problem = "no KEK: start the server with $SECURENB_KEK_URI or $SECURENB_KEK"
        uri = os.environ.get(KEK_URI_ENV) or (DEFAULT_KEK_URI if KEK_ENV in os.environ else None)
        if uri:
            try:
                kek = as_kek(uri)
                self._keks[kek.key_id] = kek
                self._problem = f"loaded from {uri}"
            except SecurenbError as exc:
                self._problem = f"the server's KEK {uri} did not load: {exc}"
                log.warning("securenb: dataset key release unavailable: %s", exc)
        named = {uri.removeprefix("env:")} if uri and uri.startswith("env:") else set()
        scrub_environment({KEK_ENV, *named})

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def check(self, kernel: str, raw: str, role: str | None) -> dict[str, Any]:
        """Whether the kernel's users may have the dataset (and the KEK opens it): nothing
        is released; asked before any sandbox starts, so a refusal costs no start."""
        path, record, grant = await self._authorize(kernel, raw, role)
        await self._in_thread(self._unwrap, path, record)
        return {"dataset_id": record.manifest.dataset_id, "role": grant.role,
                "kek_id": record.key.kek_id}

    async def stage(self, kernel: str, raw: str, role: str | None,
                    folder: str) -> dict[str, Any]:
        """Re-encrypt the dataset under a one-time key into ``folder`` (a sandbox inbox)."""
        path, record, grant = await self._authorize(kernel, raw, role)
        inbox = _inbox(folder)
        staged: dict[str, Any] = await self._in_thread(self._stage, path, record, inbox)
        details = {"dataset_id": record.manifest.dataset_id, "path": self._rel(path),
                   "kek_id": record.key.kek_id, "role": grant.role, "users": list(grant.users),
                   "kernel": kernel}
        digest = record.manifest.ciphertext.sha256
        try:  # no release without its record: the copy goes if the entry cannot be written
            await self.signer.call(lambda ws: ws.audit("data.release", f"sha256:{digest}",
                                                       details))
        except BaseException:
            for item in (Path(staged["path"]), sidecar_path(Path(staged["path"]))):
                item.unlink(missing_ok=True)
            raise
        self.log.info("securenb: released %s to kernel %s (%s)", self._rel(path), kernel,
                      ", ".join(grant.users) or "no RBAC")
        return {**staged, "role": grant.role}

    async def _in_thread(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    # -- who may -----------------------------------------------------------------------
    async def _authorize(self, kernel: str, raw: str,
                         role: str | None) -> tuple[Path, DatasetFile, Grant]:
        path = self._inside(raw)
        record = _read_record(path)
        try:
            grant = self._grant(kernel, record, role, path)
        except Refused as exc:
            await self._deny(kernel, path, record, exc)
            raise
        return path, record, grant

    def _grant(self, kernel: str, record: DatasetFile, role: str | None, path: Path) -> Grant:
        allowed = record.manifest.roles
        rel = self._rel(path)
        if self.access.authorizer is None:  # no RBAC: every authenticated user may everything
            try:
                check_access(record.manifest, role, rel)
            except AccessDenied as exc:
                raise Refused(str(exc), KernelAccess.who(())) from None
            return Grant(kernel, (), role)
        names = self.access.require(kernel, "decrypt", rel)
        users = self.access.users(kernel, rel)
        held = [set(self.access.authorizer.roles_of(u)) for u in users]
        if role is None and allowed:
            role = next((r for r in allowed if all(r in h for h in held)), None)
        for user, roles in zip(users, held, strict=True):
            if allowed and (role is None or role not in roles or role not in allowed):
                asked = f"role {role!r}" if role else "a role"
                raise Refused(
                    f"{rel}: user {user.username!r} does not hold {asked} this dataset allows "
                    f"(allowed: {', '.join(allowed)}; theirs: {', '.join(sorted(roles))})",
                    user.username)
        return Grant(kernel, names, role)

    async def _deny(self, kernel: str, path: Path, record: DatasetFile, exc: Refused) -> None:
        await self.access.deny(kernel, "decrypt", self._rel(path), exc,
                               dataset_id=record.manifest.dataset_id)

    # -- where -------------------------------------------------------------------------
    def _inside(self, raw: str) -> Path:
        """``raw`` (absolute, or relative to the root) if it lies inside the root and
        reaches its file without a symlink."""
        written = Path(os.path.normpath(self.root / Path(raw).expanduser()))
        resolved = written.resolve()
        if not resolved.is_relative_to(self.root):
            raise SecurenbError(f"{raw}: outside the server's root folder {self.root}; refused")
        if resolved != written:
            raise SecurenbError(f"{raw}: goes through a symlink; refused (name the file itself)")
        return resolved

    def _rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    # -- on a worker thread ------------------------------------------------------------
    def _unwrap(self, path: Path, record: DatasetFile) -> DataKey:
        """The data key (roles were decided by ``_grant``, for the kernel's users)."""
        kek = self._keks.get(record.key.kek_id)
        if kek is None:
            have = ", ".join(self._keks) or "none"
            raise KeyError_(f"{self._rel(path)}: wrapped by KEK {record.key.kek_id}, which this "
                            f"server does not hold (it holds: {have}; {self._problem})")
        return unwrap_data_key(record.key, kek, record.manifest, self._rel(path))

    def _stage(self, path: Path, record: DatasetFile, inbox: Path) -> dict[str, Any]:
        """Decrypt (digest checked) and re-encrypt under a fresh key into ``inbox``: the
        kernel's own staging (securenb.isolation.transfer), run here with the key."""
        dataset = DatasetInput(self._rel(path), self._rel(path), path, record,
                               record.manifest.ciphertext.sha256)
        try:
            staged = stage_dataset(dataset, self._unwrap(path, record), inbox)
        except OSError as exc:
            raise SecurenbError(f"{self._rel(path)}: cannot stage a copy in {inbox} "
                                f"({exc.strerror})") from None
        return {"path": str(staged.path), "key": staged.key.to_secret(),
                "manifest_sha256": staged.manifest_sha256}


def _read_record(path: Path) -> DatasetFile:
    """The dataset's manifest, read without following a link; the ciphertext a plain file."""
    sidecar = sidecar_path(path)
    for item in (path, sidecar):
        try:
            mode = os.lstat(item).st_mode
        except OSError as exc:
            raise DataFormatError(f"{item.name}: cannot read ({exc.strerror}); not a securenb "
                                  "dataset") from None
        if not stat.S_ISREG(mode):
            raise SecurenbError(f"{item.name}: not a plain file (a symlink?); refused")
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(sidecar, flags)
    except OSError as exc:
        raise SecurenbError(f"{sidecar.name}: not a plain file ({exc.strerror}); refused"
                            ) from None
    try:
        if Path(os.readlink(f"/proc/self/fd/{fd}")) != sidecar:
            raise SecurenbError(f"{sidecar.name}: moved while it was opened; refused")
        raw = os.read(fd, _MANIFEST_LIMIT + 1)
    finally:
        os.close(fd)
    if len(raw) > _MANIFEST_LIMIT:
        raise DataFormatError(f"{sidecar.name}: larger than {_MANIFEST_LIMIT} bytes; refused")
    return parse_sidecar(raw, sidecar)


def _inbox(folder: str) -> Path:
    """``folder`` if it is a sandbox inbox's dataset folder of this user's: reached without
    a symlink, owned by this user, writable by no one else."""
    written = Path(os.path.normpath(folder))
    runtime = base_dir().resolve()
    why = ""
    if not written.is_absolute() or written.resolve() != written:
        why = "not an absolute path free of symlinks"
    elif written.parts[-2:] != _INBOX or written.parent.parent.parent != runtime or \
            not written.parent.parent.name.startswith("snb-"):
        why = f"not <{runtime}>/snb-*/inbox/datasets"
    else:
        st = os.lstat(written) if written.exists() else None
        if st is None or not stat.S_ISDIR(st.st_mode):
            why = "not a folder"
        elif st.st_uid != os.geteuid() or st.st_mode & 0o022:
            why = "owned or writable by another user"
    if why:
        raise SecurenbError(f"{folder}: not a sandbox inbox of this user ({why}); refused")
    return written
