"""The workspace: one ``.securenb/`` folder per project, the single source of truth.

It ties the store, the key store, the audit log and the policy together so that
every service records what it did in one place and one way: artifacts are
indexed, claims become DSSE-signed attestations, and each action is an audit
log entry. Found by walking up from the current folder, like git.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import uuid
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

from securenb.core import policy as policy_mod
from securenb.core.attest import sign_envelope, subjects_of, validate_predicate, verify_envelope
from securenb.core.audit import AppendReceipt, AuditLog, SignedCheckpoint
from securenb.core.audit.note import Checkpoint, parse_note
from securenb.core.canonical import canonical_json
from securenb.core.fsutil import atomic_write_bytes, private_dir
from securenb.core.keys import PrivateKey, PublicKey
from securenb.core.keys.providers import resolve_signing_key, split_ref
from securenb.core.keys.purposes import BLOB_KEY, RECORD_KEY, RELEASE_KEY, USES, Purpose
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
from securenb.errors import KeyError_, PolicyError, SecurenbError, WorkspaceError

WORKSPACE_KEY = RECORD_KEY
MIGRATE_HINT = ("this workspace predates key separation (one key signed records and "
                "releases): run `securenb keys migrate`")


class RecordSigner(Protocol):
    """Signs a workspace's records in the process that holds its record key (server, agent).

    A kernel never unlocks a key (any cell can read its memory): it sends the
    statement or the audit event, and that process validates, signs, stores
    and audits it. The record key still signs only statements securenb
    validates and checkpoints of its own log, never bytes a caller chose.
    """

    @property
    def label(self) -> str: ...

    def attest(self, root: Path, statement: dict[str, Any]) -> dict[str, Any]: ...

    def audit(self, root: Path, action: str, subject: str,
              details: dict[str, Any]) -> dict[str, Any]: ...


_RECORD_SIGNERS: list[Callable[[Path], RecordSigner | None]] = []


def register_record_signer(find: Callable[[Path], RecordSigner | None]) -> None:
    """Let workspaces of this process find a signer holding their record key (kernels do)."""
    if find not in _RECORD_SIGNERS:
        _RECORD_SIGNERS.append(find)


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
        self._purpose_keys: dict[tuple[Purpose, str], PrivateKey] = {}
        self._remote: RecordSigner | None = None
        self._remote_checked = False

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
        """Create the workspace and its keys, one per purpose; refuse to re-create one."""
        root = Path(root).resolve()
        directory = root / DIR_NAME
        if (directory / CONFIG).exists():
            raise WorkspaceError(f"{directory}: a workspace already exists here")
        private_dir(directory)  # modes set here, not by the umask
        atomic_write_bytes(directory / ".gitignore", b"*\n")
        create_purpose_keys(KeyStore(directory / "keys"), passphrase, algorithm)
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
        write_pin(root, ws._signer.public)
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

    def record_signer(self) -> RecordSigner | None:
        """The process holding this workspace's record key, if not this one (see RecordSigner)."""
        if not self._remote_checked and self._signer is None:
            self._remote = next((s for s in (find(self.root) for find in _RECORD_SIGNERS)
                                 if s is not None), None)
            self._remote_checked = True
        return self._remote

    def unlock_records(self) -> None:
        """Make sure records can be signed: the record key unlocked here, or a signer found."""
        if self.record_signer() is None:
            self.signer()

    def signer(self) -> PrivateKey:
        """Unlock the record key (once per process): it signs attestations and checkpoints.

        Always the key store's ``workspace`` key: records are signed, indexed and
        audited by one key, so no record can be half-written with another.
        """
        remote = self.record_signer()
        if remote is not None:
            raise WorkspaceError(f"{self.dir}: the record key is held by {remote.label}; "
                                 "this process never unlocks it")
        if self._signer is None:
            self._signer = resolve_signing_key(
                WORKSPACE_KEY, keystore=self.keystore,
                passphrase_env=self.policy.signing.passphrase_env)
        return self._signer

    def key_ref(self, purpose: Purpose) -> str:
        """The policy's key for ``purpose`` (``[signing] key`` releases, ``blob_key`` blobs)."""
        if purpose == "record":
            return WORKSPACE_KEY
        signing = self.policy.signing
        return signing.key if purpose == "release" else signing.blob_key

    def purpose_signer(self, purpose: Purpose, ref: str | None = None) -> PrivateKey:
        """Unlock key ``ref`` (default: the policy's) to sign for ``purpose``, once per process.

        A key store key recorded for another purpose is refused: the record key
        never signs a release or a blob, a blob key never a model. Key files
        (``file:``, ``env:``, plug-ins) carry no purpose; trust.keys and
        trust.blob_keys say which purpose a verifier accepts them for.
        """
        ref = ref or self.key_ref(purpose)
        if purpose == "record":
            return self.signer()
        if (purpose, ref) not in self._purpose_keys:
            self.check_purpose(ref, purpose)
            key = resolve_signing_key(
                ref, keystore=self.keystore, passphrase_env=self.policy.signing.passphrase_env)
            self.check_key_material(key, purpose, ref)
            self._purpose_keys[(purpose, ref)] = key
        return self._purpose_keys[(purpose, ref)]

    def check_key_material(self, key: PrivateKey, purpose: Purpose, ref: str) -> None:
        """Refuse ``key`` if it is a key store key of another purpose under another name: a
        ``file:`` reference to the record key's file, or a key file linked to or copied
        from another's. Names and recorded purposes alone would let it sign for two."""
        for info in self.keystore.list():
            actual = self.keystore.purpose(info.name)
            if info.key_id == key.key_id and actual is not None and actual != purpose:
                raise KeyError_(f"key {ref!r} is the {actual} key {info.name!r} "
                                f"({USES[actual]}) under another name: it never signs "
                                f"{USES[purpose]}")

    def check_purpose(self, ref: str, purpose: Purpose) -> None:
        """Refuse key store key ``ref`` unless it was made for ``purpose``."""
        scheme, name = split_ref(ref)
        if scheme is not None:
            return
        if not self.keystore.exists(name):
            hint = f"; {MIGRATE_HINT}" if name in (RELEASE_KEY, BLOB_KEY) else ""
            raise KeyError_(f"{self.keystore.directory}: no key named {name!r}{hint}")
        actual = self.keystore.purpose(name)
        if actual is None:
            raise KeyError_(f"key {name!r} has no recorded purpose: {MIGRATE_HINT}")
        if actual != purpose:
            raise KeyError_(f"key {name!r} is the {actual} key ({USES[actual]}): it never "
                            f"signs {USES[purpose]}; use the {purpose} key")

    def adopt_signer(self, key: PrivateKey, purpose: Purpose = "record",
                     ref: str | None = None) -> None:
        """Use ``key``, unlocked earlier by the caller, as the key for ``purpose``.

        Only for a caller that unlocked exactly the key ``purpose_signer()`` would
        (see securenb.signing.unlock); refuses to replace a key already in use.
        """
        if purpose == "record":
            if self._signer is not None and self._signer.key_id != key.key_id:
                raise WorkspaceError(f"{self.dir}: a different signing key is already unlocked")
            self._signer = key
            return
        ref = ref or self.key_ref(purpose)
        self.check_purpose(ref, purpose)
        self.check_key_material(key, purpose, ref)
        self._purpose_keys.setdefault((purpose, ref), key)

    def public_key(self) -> PublicKey:
        """The record key's public half: what record verifiers trust by default."""
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
        remote = self.record_signer()
        if remote is not None:
            receipt = remote.audit(self.root, action, subject, details or {})
            note = parse_note(receipt["checkpoint"], f"{remote.label}'s checkpoint")
            return AppendReceipt(int(receipt["index"]), int(receipt["count"]),
                                 SignedCheckpoint(Checkpoint.from_text(note.text), note))
        return self.audit_log.append(action, subject, details=details or {}, actor=current_actor())

    def record_artifact(
        self, path: Path, media_type: str | None = None, run_id: str | None = None,
        digest: str | None = None, size: int | None = None,
    ) -> Artifact:
        """Index ``path`` (hashed here unless its SHA-256 ``digest`` is known); audited if new."""
        path = Path(path)
        if not path.is_file():
            raise WorkspaceError(f"{path}: not a file")
        if digest is None:
            digest, size = file_sha256(path)
        elif size is None:
            size = path.stat().st_size
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

    def attest(self, statement: dict[str, Any],
               requester: dict[str, str] | None = None) -> AttestationRecord:
        """Validate, sign (DSSE) and store ``statement``; index it and audit it.

        In a kernel of a securenb server, the server does it (RecordSigner).
        ``requester`` (the server passes the kernel's id) goes into the audit entry.
        """
        validate_predicate(statement["predicateType"], statement["predicate"])
        subjects = subjects_of(statement)
        remote = self.record_signer()
        if remote is not None:
            data = remote.attest(self.root, statement)
            return AttestationRecord(
                envelope=data["envelope"], predicate_type=data["predicate_type"],
                key_id=data["key_id"], created=data["created"],
                subjects=tuple((s["name"], s["digest"]["sha256"]) for s in data["subjects"]))
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
            {"predicateType": record.predicate_type, "envelope": f"sha256:{digest}",
             **(requester or {})},
        )
        return record

    def record_trust(self) -> list[tuple[PublicKey, str]]:
        """The keys whose records this workspace trusts, and why (issue 11.4).

        ``trust.record_keys`` of the policy (reviewed, outside ``.securenb/``) if
        any; else the record key pinned outside the folder when this workspace
        was made (``$XDG_CONFIG_HOME/securenb/pins/``, as ssh's known_hosts).
        ``.securenb/keys/workspace.pub`` alone is reported as unpinned, and a
        record key that differs from its pin is an error: a folder rewritten and
        re-signed with a new key does not verify.
        """
        policy, source = self.policy_and_source
        if policy.trust.record_keys:
            from securenb.core.keys import resolve_public_key

            return [(resolve_public_key(ref if ":" in ref else f"file:{self.root / ref}"),
                     f"listed in trust.record_keys of {source}")
                    for ref in policy.trust.record_keys]
        found = self.public_key()
        pinned = read_pin(self.root)
        if pinned is None:
            return [(found, f"unpinned: found only in {self.keystore.pub_path(WORKSPACE_KEY)}")]
        if pinned != found.key_id:
            raise KeyError_(f"{self.keystore.pub_path(WORKSPACE_KEY)}: the record key changed: "
                            f"pinned {pinned[:16]} ({pin_path(self.root)}), found "
                            f"{found.key_id[:16]}; if you rotated it on purpose, list the new "
                            "key in trust.record_keys")
        return [(found, f"pinned in {pin_path(self.root)}")]

    def load_attestation(
        self, envelope_digest: str, trusted: list[PublicKey] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Return (envelope, statement) after checking the blob and its signature."""
        envelope, statement, _ = self._open_attestation(envelope_digest, trusted)
        return envelope, statement

    def _open_attestation(
        self, envelope_digest: str, trusted: list[PublicKey] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any], PublicKey]:
        raw = self.store.get_blob(envelope_digest)
        envelope = json.loads(raw)
        keys = trusted if trusted is not None else [k for k, _ in self.record_trust()]
        statement, key = verify_envelope(
            envelope, keys, source=str(self.store.blob_path(envelope_digest)))
        return envelope, statement, key

    def checked_attestation(self, record: AttestationRecord) -> dict[str, Any]:
        """What a command may show of ``record``: the signed values, never the index's.

        The predicate type, subjects and key come from the verified envelope; an
        index row that says otherwise is reported as tampering (issue 11.3).
        ``created`` is the index's time of recording, which nothing signs.
        """
        row = record.to_json()
        try:
            trust = self.record_trust()
            _, statement, key = self._open_attestation(record.envelope, [k for k, _ in trust])
        except SecurenbError as exc:
            return {**row, "verified": False, "error": str(exc)}
        row["trust"] = next(why for k, why in trust if k.key_id == key.key_id)
        subjects = subjects_of(statement)
        signed = {"predicate_type": statement["predicateType"], "key_id": key.key_id,
                  "subjects": [{"name": s.name, "digest": {"sha256": s.sha256}}
                               for s in subjects]}
        edited = [name for name in ("predicate_type", "key_id") if row[name] != signed[name]]
        if sorted(record.subjects) != sorted((s.name, s.sha256) for s in subjects):
            edited.append("subjects")
        row.update(signed, verified=not edited)
        if edited:
            row["error"] = (f"the index was edited: its {', '.join(edited)} differ from the "
                            "signed envelope (shown here)")
        return row


def pin_path(root: Path) -> Path:
    """Where the record key of the workspace at ``root`` is pinned: outside the folder."""
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    name = hashlib.sha256(str(Path(root).resolve()).encode()).hexdigest()[:32]
    return base / "securenb" / "pins" / f"{name}.json"


def read_pin(root: Path) -> str | None:
    try:
        data = json.loads(pin_path(root).read_text())
    except (OSError, ValueError):
        return None
    key_id = data.get("record_key") if isinstance(data, dict) else None
    return key_id if isinstance(key_id, str) else None


def write_pin(root: Path, key: PublicKey) -> None:
    """Pin ``key`` as the record key of ``root`` (at init, or on `securenb keys pin`)."""
    path = pin_path(root)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    record = {"root": str(Path(root).resolve()), "record_key": key.key_id}
    atomic_write_bytes(path, json.dumps(record).encode(), 0o600)


def create_purpose_keys(keys: KeyStore, passphrase: str, algorithm: str = "ecdsa-p256",
                        names: tuple[str, ...] = (RECORD_KEY, RELEASE_KEY, BLOB_KEY)) -> None:
    """Create the default key of each purpose in ``names`` (all three for a new workspace)."""
    purposes: dict[str, Purpose] = {RECORD_KEY: "record", RELEASE_KEY: "release",
                                    BLOB_KEY: "blob"}
    for name in names:
        keys.create(name, algorithm, passphrase, purpose=purposes[name])  # type: ignore[arg-type]


def _read_config(path: Path) -> dict[str, Any]:
    try:
        data = read_toml(path)
    except PolicyError as exc:
        raise WorkspaceError(f"unreadable workspace config: {exc}") from exc
    for key in ("workspace_id", "origin"):
        if not isinstance(data.get(key), str):
            raise WorkspaceError(f"{path}: missing or invalid {key!r}")
    return data
