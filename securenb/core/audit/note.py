"""Signed notes (c2sp.org/signed-note) and tlog checkpoints (c2sp.org/tlog-checkpoint).

A checkpoint is the text ``<origin>\\n<size>\\n<base64 root>\\n`` signed as a note:
a blank line, then lines ``— <key name> <base64(4-byte key hash || signature)>``.
The format is the one Go's sumdb, Sigstore's Rekor and the transparency-dev
witnesses use, so any of their tools can read our checkpoints and we can read
theirs.

Key hashes: Ed25519 keys use the signed-note rule
``SHA-256(name || 0x0A || 0x01 || raw public key)[:4]``; ECDSA keys use the
Rekor/sigstore (and signed-note type 0x02) rule, the first 4 bytes of SHA-256 of
the SPKI DER. ECDSA signatures are DER, over the note text as is.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization

from securenb.core.audit.merkle import HASH_SIZE
from securenb.core.keys import PrivateKey, PublicKey
from securenb.errors import AuditError, SignatureError

SIGNATURE_PREFIX = "\u2014 "
MAX_NOTE_BYTES = 1 << 20
MAX_SIGNATURES = 100
"""The spec asks verifiers to accept at least 16 signatures; Go's note caps at 100."""

_CONTROL = re.compile("[\x00-\x09\x0b-\x1f]")
_SIZE = re.compile(r"(0|[1-9][0-9]*)")


def _b64decode(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise AuditError(f"{what}: not valid base64") from exc


def check_key_name(name: str) -> None:
    """Key names are non-empty and hold no Unicode space and no '+' (signed-note)."""
    if not name or "+" in name or any(ch.isspace() for ch in name):
        raise AuditError(f"invalid note key name {name!r}: it must be non-empty, no spaces, no '+'")


def note_key_hash(name: str, key: PublicKey) -> bytes:
    """The 4-byte key hash that names ``key`` in a signature line."""
    if key.algorithm == "ed25519":
        raw = key.key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return hashlib.sha256(name.encode() + b"\n\x01" + raw).digest()[:4]
    return hashlib.sha256(key.der()).digest()[:4]


@dataclass(frozen=True)
class NoteSignature:
    """One signature line: key name, 4-byte key hash, raw signature bytes."""

    name: str
    key_hash: bytes
    signature: bytes

    def line(self) -> str:
        blob = base64.b64encode(self.key_hash + self.signature).decode("ascii")
        return f"{SIGNATURE_PREFIX}{self.name} {blob}\n"


@dataclass(frozen=True)
class SignedNote:
    """Note text (ending in a newline) and its signature lines."""

    text: str
    signatures: tuple[NoteSignature, ...]

    def to_text(self) -> str:
        return self.text + "\n" + "".join(sig.line() for sig in self.signatures)

    def to_bytes(self) -> bytes:
        return self.to_text().encode("utf-8")


def parse_note(data: bytes | str, source: str = "note") -> SignedNote:
    """Parse a signed note strictly; the error names ``source`` and the problem."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if len(raw) > MAX_NOTE_BYTES:
        raise AuditError(f"{source}: note is larger than {MAX_NOTE_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AuditError(f"{source}: note is not valid UTF-8") from exc
    if _CONTROL.search(text):
        raise AuditError(f"{source}: note holds a control character other than newline")
    split = text.rfind("\n\n")
    if split < 0:
        raise AuditError(f"{source}: no blank line between the note text and its signatures")
    body, sig_block = text[: split + 1], text[split + 2 :]
    if not sig_block:
        raise AuditError(f"{source}: no signature lines after the last blank line")
    if not sig_block.endswith("\n"):
        raise AuditError(f"{source}: the last signature line does not end with a newline")
    lines = sig_block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise AuditError(f"{source}: more than {MAX_SIGNATURES} signatures")
    signatures = []
    for number, line in enumerate(lines, 1):
        if not line.startswith(SIGNATURE_PREFIX):
            raise AuditError(f"{source}: signature line {number} does not start with '— '")
        name, sep, blob = line[len(SIGNATURE_PREFIX) :].partition(" ")
        if not sep or " " in blob:
            raise AuditError(f"{source}: signature line {number} is not '— <name> <base64>'")
        check_key_name(name)
        decoded = _b64decode(blob, f"{source}: signature line {number}")
        if len(decoded) < 5:
            raise AuditError(f"{source}: signature line {number} is too short for a signature")
        signatures.append(NoteSignature(name, decoded[:4], decoded[4:]))
    return SignedNote(body, tuple(signatures))


class NoteSigner:
    """Signs notes as one key name; the key hash is computed once, not per note."""

    def __init__(self, name: str, key: PrivateKey) -> None:
        check_key_name(name)
        self.name, self.key = name, key
        self.key_hash = note_key_hash(name, key.public)

    def sign(self, text: str) -> SignedNote:
        """Sign ``text``: it must end in a newline and hold no blank line (checkpoints never do)."""
        if not text.endswith("\n") or "\n\n" in text or _CONTROL.search(text):
            raise AuditError("note text must end in a newline, hold no blank line and no "
                             "control character")
        signature = self.key.sign(text.encode("utf-8"))
        return SignedNote(text, (NoteSignature(self.name, self.key_hash, signature),))


def sign_note(text: str, name: str, key: PrivateKey) -> SignedNote:
    """Sign ``text`` (which must end in a newline) as key ``name``."""
    return NoteSigner(name, key).sign(text)


def verify_note(
    note: SignedNote, key: PublicKey, *, name: str | None = None, source: str = "note"
) -> NoteSignature:
    """Verify ``note`` with ``key``; return the signature line that verified.

    Lines from other keys are ignored, as the spec requires (witness
    cosignatures, rotated keys). A line naming this key that fails to verify
    rejects the whole note; so does a note with no line from this key.
    """
    data = note.text.encode("utf-8")
    verified = None
    for sig in note.signatures:
        if name is not None and sig.name != name:
            continue
        if sig.key_hash != note_key_hash(sig.name, key):
            continue
        try:
            key.verify(sig.signature, data)
        except SignatureError as exc:
            raise AuditError(
                f"{source}: signature by {sig.name} (key hash {sig.key_hash.hex()}) "
                f"does not verify with key {key.key_id[:16]}"
            ) from exc
        verified = verified or sig
    if verified is None:
        seen = ", ".join(f"{s.name} (key hash {s.key_hash.hex()})" for s in note.signatures)
        wanted = name or "any name"
        raise AuditError(
            f"{source}: no signature by key {key.key_id[:16]} as {wanted}; "
            f"the note is signed by: {seen}"
        )
    return verified


@dataclass(frozen=True)
class Checkpoint:
    """The signed statement "the log ``origin`` has ``size`` entries with this root"."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def text(self) -> str:
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode("ascii")]
        return "\n".join([*lines, *self.extensions]) + "\n"

    @classmethod
    def from_text(cls, text: str, source: str = "checkpoint") -> Checkpoint:
        """Parse a checkpoint body strictly (tlog-checkpoint "Note text")."""
        if not text.endswith("\n"):
            raise AuditError(f"{source}: checkpoint text does not end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise AuditError(f"{source}: checkpoint needs origin, size and root hash lines")
        origin, size_text, root_text, *extensions = lines
        if not origin:
            raise AuditError(f"{source}: checkpoint origin line is empty")
        if not _SIZE.fullmatch(size_text):
            raise AuditError(f"{source}: checkpoint size {size_text!r} is not a decimal number")
        root = _b64decode(root_text, f"{source}: checkpoint root hash")
        if len(root) != HASH_SIZE:
            raise AuditError(f"{source}: checkpoint root hash is {len(root)} bytes, not 32")
        if any(not line for line in extensions):
            raise AuditError(f"{source}: checkpoint has an empty extension line")
        return cls(origin, int(size_text), root, tuple(extensions))


def sign_checkpoint(checkpoint: Checkpoint, key: PrivateKey, name: str | None = None) -> SignedNote:
    """Sign ``checkpoint`` as ``name`` (by default its origin, as the spec recommends)."""
    return sign_note(checkpoint.text(), name or checkpoint.origin, key)


def open_checkpoint(
    data: bytes | str | SignedNote,
    key: PublicKey,
    *,
    name: str | None = None,
    source: str = "checkpoint",
) -> Checkpoint:
    """Parse and verify a signed checkpoint; the text is only trusted once verified.

    The signature must be under key name ``name``, by default the checkpoint's own
    origin (as our logs sign): a key hash alone does not name the log for ECDSA keys.
    """
    note = data if isinstance(data, SignedNote) else parse_note(data, source)
    checkpoint = Checkpoint.from_text(note.text, source)  # read for its origin, not trusted
    verify_note(note, key, name=name, source=source)
    if name is None:
        verify_note(note, key, name=checkpoint.origin, source=source)
    return checkpoint


@dataclass(frozen=True)
class SignedCheckpoint:
    """A checkpoint with the signed note it came from: what receipts and proofs carry."""

    checkpoint: Checkpoint
    note: SignedNote
