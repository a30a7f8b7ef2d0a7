"""Which key and which checkpoint an audit-log verification trusts, and why.

A log is verified against a key, and whoever can write the log's folder can
also swap ``workspace.pub`` beside it. So the key comes, in this order, from
the verifier (``--public-key``), from the policy (``[audit] key``: a file outside
``.securenb/`` or a key id), or from a checkpoint kept outside the workspace,
under the user's state folder, by an earlier verification (or by the log's
creation on this machine). A key found only inside the verified folder is
reported as unpinned; a key different from the kept one is an error.

The kept checkpoint is also the rollback reference: the log must still extend
the last one verified. It is keyed by the log folder's real path, not by
anything the folder holds, so rewriting the folder cannot point it elsewhere.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from securenb.core.audit.note import Checkpoint, SignedCheckpoint, open_checkpoint
from securenb.core.fsutil import atomic_write_bytes, private_dir
from securenb.core.keys import PublicKey
from securenb.errors import AuditError, SecurenbError, WorkspaceError, at

STATE_ENV = "SECURENB_STATE_DIR"


def state_dir() -> Path:
    """``$SECURENB_STATE_DIR``, else ``$XDG_STATE_HOME/securenb``, else
    ``~/.local/state/securenb``: the user's, outside every workspace."""
    if os.environ.get(STATE_ENV):
        return Path(os.environ[STATE_ENV])
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "securenb"


def kept_path(log_dir: Path) -> Path:
    """Where the last verified checkpoint of the log in ``log_dir`` is kept."""
    real = os.path.realpath(log_dir)
    return state_dir() / "audit" / f"{hashlib.sha256(real.encode()).hexdigest()[:32]}.json"


@dataclass(frozen=True)
class Kept:
    """The key and checkpoint of the last good verification of one log folder."""

    path: Path
    key: PublicKey
    checkpoint: Checkpoint
    since: str


def load_kept(log_dir: Path) -> Kept | None:
    """The kept record for ``log_dir``, its checkpoint re-verified; None if there is none."""
    path = kept_path(log_dir)
    try:
        data: Any = json.loads(path.read_bytes())
        key = PublicKey.from_pem(data["public_key"].encode(), source=str(path))
        checkpoint = open_checkpoint(data["checkpoint"], key, source=str(path))
        since = str(data["since"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError, SecurenbError) as exc:
        raise AuditError(at(path, f"the kept audit checkpoint is unreadable ({exc}); remove it "
                                  "to trust the log's key again from scratch")) from exc
    return Kept(path, key, checkpoint, since)


def keep(log_dir: Path, key: PublicKey, head: SignedCheckpoint, since: str) -> Path:
    """Keep ``head`` (signed by ``key``) as the reference for the next verification."""
    path = kept_path(log_dir)
    private_dir(path.parent)
    record = {"log": os.path.realpath(log_dir), "public_key": key.pem().decode(),
              "key_id": key.key_id, "origin": head.checkpoint.origin,
              "checkpoint": head.note.to_text(), "since": since}
    atomic_write_bytes(path, json.dumps(record, indent=2, sort_keys=True).encode(), mode=0o600)
    return path


@dataclass(frozen=True)
class Trust:
    """The key a verification uses, where it came from, and the checkpoints to extend."""

    key: PublicKey
    source: str
    pinned: bool
    kept: Kept | None

    def to_json(self) -> dict[str, Any]:
        return {"key_id": self.key.key_id, "source": self.source, "pinned": self.pinned,
                "kept": str(self.kept.path) if self.kept else None}


def resolve(log_dir: Path, given: PublicKey | None, given_source: str,
            found: PublicKey | None, found_source: str) -> Trust:
    """Choose the key: ``given`` (the verifier's or the policy's pin) first, then the kept
    one, then ``found`` (inside the verified folder: unpinned). A kept key that differs
    from either is an error naming both."""
    kept = load_kept(log_dir)
    if given is not None:
        if kept is not None and kept.key.key_id != given.key_id:
            raise AuditError(_changed(log_dir, kept, given, given_source))
        return Trust(given, given_source, True, kept)
    if kept is not None:
        if found is not None and found.key_id != kept.key.key_id:
            raise AuditError(_changed(log_dir, kept, found, found_source))
        return Trust(kept.key, f"kept by the verification of {kept.since} ({kept.path})",
                     True, kept)
    if found is None:
        raise WorkspaceError(at(log_dir, "no key to verify with: give --public-key"))
    return Trust(found, f"{found_source} (unpinned: found only inside the verified folder)",
                 False, None)


def _changed(log_dir: Path, kept: Kept, key: PublicKey, source: str) -> str:
    return at(log_dir, f"the audit log's key changed: {source} is key {key.key_id[:16]}, but "
                       f"the log was verified on {kept.since} with key {kept.key.key_id[:16]} "
                       f"(kept in {kept.path}); if the key was replaced on purpose, pin the "
                       "new one in the policy's [audit] key and remove the kept file")
