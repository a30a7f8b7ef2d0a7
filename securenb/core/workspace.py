"""The workspace: one ``.securenb/`` folder per project, the single source of truth.

It ties the store, the key store, the audit log and the policy together so that
every service records what it did in one place and one way: artifacts are
indexed, claims become DSSE-signed attestations, and each action is an audit
log entry. Found by walking up from the current folder, like git.
"""

from __future__ import annotations

import getpass
import json
import os
import uuid
from functools import cached_property
from pathlib import Path
from typing import Any

from securenb.core import policy as policy_mod
from securenb.core.attest import sign_envelope, subjects_of, validate_predicate, verify_envelope
from securenb.core.audit import AppendReceipt, AuditLog
from securenb.core.canonical import canonical_json
from securenb.core.fsutil import atomic_write_bytes, private_dir
from securenb.core.keys import PrivateKey, PublicKey
from securenb.core.keys.providers import resolve_signing_key
from securenb.core.keys.store import KeyStore
from securenb.core.locate import CONFIG, DIR_NAME, read_toml, workspace_root
from securenb.core.policy import Policy
from securenb.core.store import (
    Artifact,
    AttestationRecord,
    Store,
    file_sha256,
    media_type_for,
    now_rfc3339,
)
from securenb.errors import PolicyError, WorkspaceError

WORKSPACE_KEY = "workspace"


def current_actor() -> str:
    """Who is acting, as recorded in the audit log (the server passes its user)."""
    return os.environ.get("SECURENB_ACTOR") or getpass.getuser()


class Workspace:
    """A project's ``.securenb/`` folder and the services recording into it."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.dir = self.root / DIR_NAME
        config = self.dir / CONFIG
        if not config.is_file():
            raise WorkspaceError(f"{config}: missing; run `securenb init` in {self.root}")
        self.config = _read_config(config)
        self._signer: PrivateKey | None = None

    # -- finding and creating ------------------------------------------------
    @classmethod
    def find(cls, start: Path | None = None) -> Workspace:
        """The workspace of ``start`` (default: cwd) or of its nearest parent."""
        root = workspace_root(start)
        if root is None:
            here = Path(start or Path.cwd()).resolve()
            raise WorkspaceError(
                f"no {DIR_NAME}/ workspace in {here} or any parent; run `securenb init`"
            )
        return cls(root)

    @classmethod
    def init(cls, root: Path, passphrase: str, algorithm: str = "ecdsa-p256") -> Workspace:
        """Create the workspace and its signing key; refuse to re-create one."""
        root = Path(root).resolve()
        directory = root / DIR_NAME
        if (directory / CONFIG).exists():
            raise WorkspaceError(f"{directory}: a workspace already exists here")
        private_dir(directory)  # modes set here, not by the umask
        atomic_write_bytes(directory / ".gitignore", b"*\n")
        KeyStore(directory / "keys").create(WORKSPACE_KEY, algorithm, passphrase)  # type: ignore[arg-type]
        workspace_id = uuid.uuid4().hex
        atomic_write_bytes(
            directory / CONFIG,
            (
                f'workspace_id = "{workspace_id}"\n'
                f'created = "{now_rfc3339()}"\n'
                f'origin = "securenb.local/{workspace_id}"\n'
            ).encode(),
        )
        ws = cls(root)
        ws._signer = ws.keystore.load(WORKSPACE_KEY, passphrase)
        Store(directory).close()
        ws.audit("workspace.init", f"workspace:{workspace_id}", {"key_id": ws._signer.key_id})
        return ws

    # -- parts ----------------------------------------------------------------
    @cached_property
    def store(self) -> Store:
        return Store(self.dir)

    @cached_property
    def keystore(self) -> KeyStore:
        return KeyStore(self.dir / "keys")

    @cached_property
    def policy_and_source(self) -> tuple[Policy, Path | None]:
        return policy_mod.load_policy(self.root)

    @property
    def policy(self) -> Policy:
        return self.policy_and_source[0]

    @property
    def origin(self) -> str:
        return str(self.config["origin"])

    def signer(self) -> PrivateKey:
        """Unlock the signing key named by policy (once per process)."""
        if self._signer is None:
            signing = self.policy.signing
            self._signer = resolve_signing_key(
                signing.key, keystore=self.keystore, passphrase_env=signing.passphrase_env
            )
        return self._signer

    def adopt_signer(self, key: PrivateKey) -> None:
        """Use ``key``, unlocked earlier by the caller, as the policy's signing key.

        Only for a caller that unlocked exactly the key ``signer()`` would (see
        securenb.signing.unlock); refuses to replace a key already in use.
        """
        if self._signer is not None and self._signer.key_id != key.key_id:
            raise WorkspaceError(f"{self.dir}: a different signing key is already unlocked")
        self._signer = key

    def public_key(self) -> PublicKey:
        """The workspace key's public half: what the offline verifiers trust by default."""
        return self.keystore.public(WORKSPACE_KEY)

    @cached_property
    def audit_log(self) -> AuditLog:
        """The workspace's audit log, opened once per process; unlocks the key on first append."""
        return AuditLog(self.dir / "audit", self.signer, origin=self.origin)

    # -- recording --------------------------------------------------------------
    def relpath(self, path: Path) -> str:
        """Project-relative POSIX path (absolute if outside the project)."""
        resolved = Path(path).resolve()
        try:
            return resolved.relative_to(self.root).as_posix()
        except ValueError:
            return resolved.as_posix()

    def audit(
        self, action: str, subject: str, details: dict[str, Any] | None = None
    ) -> AppendReceipt:
        """Append one audit entry (durable and checkpointed when this returns)."""
        return self.audit_log.append(action, subject, details=details or {}, actor=current_actor())

    def record_artifact(
        self, path: Path, media_type: str | None = None, run_id: str | None = None
    ) -> Artifact:
        """Hash ``path`` and index it; audited only when it is new."""
        path = Path(path)
        if not path.is_file():
            raise WorkspaceError(f"{path}: not a file")
        digest, size = file_sha256(path)
        artifact = Artifact(
            digest=digest,
            path=self.relpath(path),
            media_type=media_type or media_type_for(path),
            size=size,
            run_id=run_id,
            created=now_rfc3339(),
        )
        if self.store.add_artifacts([artifact]):
            self.audit("artifact.record", f"sha256:{digest}", {"path": artifact.path})
        return artifact

    def attest(self, statement: dict[str, Any]) -> AttestationRecord:
        """Validate, sign (DSSE) and store ``statement``; index it and audit it."""
        validate_predicate(statement["predicateType"], statement["predicate"])
        subjects = subjects_of(statement)
        signer = self.signer()
        envelope = sign_envelope(statement, signer)
        digest = self.store.put_blob(canonical_json(envelope))
        record = AttestationRecord(
            envelope=digest,
            predicate_type=statement["predicateType"],
            key_id=signer.key_id,
            created=now_rfc3339(),
            subjects=tuple((s.name, s.sha256) for s in subjects),
        )
        self.store.add_attestation(record)
        self.audit(
            "attestation.sign",
            f"sha256:{subjects[0].sha256}",
            {"predicateType": record.predicate_type, "envelope": f"sha256:{digest}"},
        )
        return record

    def load_attestation(
        self, envelope_digest: str, trusted: list[PublicKey] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Return (envelope, statement) after checking the blob and its signature."""
        raw = self.store.get_blob(envelope_digest)
        envelope = json.loads(raw)
        statement, _ = verify_envelope(
            envelope,
            trusted if trusted is not None else [self.public_key()],
            source=str(self.store.blob_path(envelope_digest)),
        )
        return envelope, statement


def _read_config(path: Path) -> dict[str, Any]:
    try:
        data = read_toml(path)
    except PolicyError as exc:
        raise WorkspaceError(f"unreadable workspace config: {exc}") from exc
    for key in ("workspace_id", "origin"):
        if not isinstance(data.get(key), str):
            raise WorkspaceError(f"{path}: missing or invalid {key!r}")
    return data
