"""A self-contained inclusion proof: entry, audit path and the signed checkpoint.

Whoever holds this JSON and the log's public key can check, without the log,
that the entry is the ``index``-th of the log the key signed.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from securenb.core.audit.merkle import leaf_hash, verify_inclusion
from securenb.core.audit.note import Checkpoint, open_checkpoint, parse_note
from securenb.core.keys import PublicKey
from securenb.errors import AuditError


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise AuditError(f"inclusion proof: {what} is not a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error as exc:
        raise AuditError(f"inclusion proof: {what} is not valid base64") from exc


@dataclass(frozen=True)
class InclusionProof:
    """RFC 9162 inclusion proof of entry ``index`` in the tree the checkpoint signs."""

    index: int
    tree_size: int
    leaf_hash: bytes
    hashes: tuple[bytes, ...]
    checkpoint: str
    entry: bytes

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "tree_size": self.tree_size,
            "leaf_hash": _b64(self.leaf_hash),
            "hashes": [_b64(h) for h in self.hashes],
            "checkpoint": self.checkpoint,
            "entry": self.entry.decode("utf-8"),
        }

    @classmethod
    def from_json(cls, obj: Any) -> InclusionProof:
        if not isinstance(obj, dict):
            raise AuditError("inclusion proof: not a JSON object")
        for name, kind in (("index", int), ("tree_size", int), ("hashes", list),
                           ("checkpoint", str), ("entry", str)):
            if not isinstance(obj.get(name), kind) or isinstance(obj.get(name), bool):
                raise AuditError(f"inclusion proof: {name} is missing or not a {kind.__name__}")
        return cls(
            index=obj["index"],
            tree_size=obj["tree_size"],
            leaf_hash=_unb64(obj.get("leaf_hash"), "leaf_hash"),
            hashes=tuple(_unb64(h, f"hashes[{i}]") for i, h in enumerate(obj["hashes"])),
            checkpoint=obj["checkpoint"],
            entry=obj["entry"].encode("utf-8"),
        )


def verify_inclusion_proof(
    proof: InclusionProof, public_key: PublicKey, origin: str | None = None
) -> Checkpoint:
    """Check the checkpoint signature (and, given ``origin``, which log it is of), the
    entry's leaf hash and the audit path.

    Returns the verified checkpoint (so callers can compare sizes).
    """
    checkpoint = open_checkpoint(
        parse_note(proof.checkpoint, "inclusion proof checkpoint"), public_key,
        source="inclusion proof checkpoint",
    )
    if origin is not None and checkpoint.origin != origin:
        raise AuditError(f"inclusion proof: the checkpoint is of log {checkpoint.origin!r}, "
                         f"not {origin!r}")
    if checkpoint.size != proof.tree_size:
        raise AuditError(
            f"inclusion proof: tree size {proof.tree_size} but the checkpoint signs "
            f"size {checkpoint.size}"
        )
    if leaf_hash(proof.entry) != proof.leaf_hash:
        raise AuditError(f"inclusion proof: entry {proof.index} does not hash to its leaf hash")
    verify_inclusion(proof.leaf_hash, proof.index, proof.tree_size, proof.hashes, checkpoint.root)
    return checkpoint
