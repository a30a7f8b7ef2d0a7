"""Signed notes and checkpoints: our own, and a real Rekor checkpoint and inclusion proof."""

from __future__ import annotations

import base64
import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from securenb.core.audit.merkle import leaf_hash, root_from_inclusion_proof, verify_inclusion
from securenb.core.audit.note import (
    Checkpoint,
    NoteSignature,
    SignedNote,
    note_key_hash,
    open_checkpoint,
    parse_note,
    sign_checkpoint,
    sign_note,
    verify_note,
)
from securenb.core.keys import PrivateKey, PublicKey
from securenb.errors import AuditError

VECTORS = Path(__file__).parent / "vectors" / "model-transparency-v1.1.0"
ROOT = hashlib.sha256(b"root").digest()
ORIGIN = "example.com/log"


@pytest.fixture(params=["ecdsa-p256", "ecdsa-p384", "ed25519"])
def key(request: pytest.FixtureRequest) -> PrivateKey:
    return PrivateKey.generate(request.param)


def test_checkpoint_text_is_the_tlog_checkpoint_body() -> None:
    cp = Checkpoint(ORIGIN, 42, ROOT)
    assert cp.text() == f"{ORIGIN}\n42\n{base64.b64encode(ROOT).decode()}\n"
    assert Checkpoint.from_text(cp.text()) == cp
    with_ext = Checkpoint(ORIGIN, 0, ROOT, ("Timestamp: 1",))
    assert Checkpoint.from_text(with_ext.text()) == with_ext


def test_sign_and_verify_roundtrip(key: PrivateKey) -> None:
    cp = Checkpoint(ORIGIN, 7, ROOT)
    note = sign_checkpoint(cp, key)
    raw = note.to_bytes()
    lines = raw.decode().split("\n")
    assert lines[3] == "" and lines[4].startswith("\u2014 example.com/log ")
    blob = base64.b64decode(lines[4].split(" ")[2])
    assert blob[:4] == note_key_hash(ORIGIN, key.public)
    assert open_checkpoint(raw, key.public) == cp
    assert parse_note(raw) == note


def test_key_hash_conventions() -> None:
    ec_key = PrivateKey.generate("ecdsa-p256")
    # Rekor/sigstore (and signed-note type 0x02): SHA-256 of the SPKI DER, for any name.
    expected = hashlib.sha256(ec_key.public.der()).digest()[:4]
    assert note_key_hash("a", ec_key.public) == note_key_hash("b", ec_key.public) == expected
    ed = PrivateKey.generate("ed25519")
    raw = ed.public.key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    # signed-note: SHA-256(name || 0x0A || 0x01 || 32-byte key)[:4]
    assert note_key_hash("n", ed.public) == hashlib.sha256(b"n\n\x01" + raw).digest()[:4]
    assert note_key_hash("m", ed.public) != note_key_hash("n", ed.public)


def test_tampered_text_fails(key: PrivateKey) -> None:
    note = sign_checkpoint(Checkpoint(ORIGIN, 7, ROOT), key)
    forged = SignedNote(note.text.replace("\n7\n", "\n8\n"), note.signatures)
    with pytest.raises(AuditError, match="does not verify"):
        verify_note(forged, key.public)


def test_unknown_key_is_rejected_with_the_signers_named(key: PrivateKey) -> None:
    note = sign_checkpoint(Checkpoint(ORIGIN, 7, ROOT), key)
    other = PrivateKey.generate(key.algorithm)
    with pytest.raises(AuditError, match=r"no signature by key .* signed by: example.com/log"):
        verify_note(note, other.public)


def test_matching_key_hash_with_bad_signature_rejects_the_note(key: PrivateKey) -> None:
    note = sign_checkpoint(Checkpoint(ORIGIN, 7, ROOT), key)
    sig = note.signatures[0]
    broken = SignedNote(note.text, (NoteSignature(sig.name, sig.key_hash, b"\x00" * 64),))
    with pytest.raises(AuditError, match="does not verify"):
        verify_note(broken, key.public)


def test_signatures_from_other_keys_are_ignored(key: PrivateKey) -> None:
    """Witness cosignatures or a rotated key must not break verification."""
    text = Checkpoint(ORIGIN, 7, ROOT).text()
    mine = sign_note(text, ORIGIN, key).signatures[0]
    witness = sign_note(text, "witness.example/w1", PrivateKey.generate("ed25519")).signatures[0]
    note = parse_note(SignedNote(text, (witness, mine)).to_bytes())
    assert verify_note(note, key.public) == mine
    assert verify_note(note, key.public, name=ORIGIN) == mine
    with pytest.raises(AuditError, match="no signature"):
        verify_note(note, key.public, name="someone.else")


def test_ed25519_name_is_part_of_the_key_hash() -> None:
    key = PrivateKey.generate("ed25519")
    note = sign_note(Checkpoint(ORIGIN, 1, ROOT).text(), ORIGIN, key)
    sig = note.signatures[0]
    renamed = SignedNote(note.text, (NoteSignature("other.name", sig.key_hash, sig.signature),))
    with pytest.raises(AuditError, match="no signature"):
        verify_note(renamed, key.public)


GOOD = sign_note(Checkpoint(ORIGIN, 1, ROOT).text(), ORIGIN,
                 PrivateKey.generate()).to_text()


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (GOOD.replace("\n\n", "\n"), "no blank line"),
        (GOOD[:-1], "does not end with a newline"),
        (GOOD.replace("\u2014 ", "-- "), "does not start with"),
        (GOOD.replace("\u2014 example.com/log ", "\u2014 example.com/log"), "not '— <name>"),
        (GOOD.replace("\u2014 example.com/log ", "\u2014 bad+name "), "invalid note key name"),
        (GOOD.replace("\n1\n", "\n1\t\n"), "control character"),
        (GOOD[: GOOD.rindex(" ") + 1] + "%%%%\n", "not valid base64"),
        (GOOD[: GOOD.rindex(" ") + 1] + "AAAA\n", "too short"),
        (GOOD + "\n", "no signature lines"),
        (GOOD + "x\n", "does not start with"),
        (GOOD.encode() + b"\xff", "UTF-8"),
    ],
)
def test_malformed_notes_are_rejected(data: str | bytes, problem: str) -> None:
    with pytest.raises(AuditError, match=problem):
        parse_note(data, "test-note")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("origin\n1\n", "needs origin, size and root"),
        ("\n1\n" + base64.b64encode(ROOT).decode() + "\n", "origin line is empty"),
        ("o\n01\n" + base64.b64encode(ROOT).decode() + "\n", "not a decimal"),
        ("o\n-1\n" + base64.b64encode(ROOT).decode() + "\n", "not a decimal"),
        ("o\n1\n" + base64.b64encode(b"short").decode() + "\n", "not 32"),
        ("o\n1\n!!!!\n", "not valid base64"),
        ("o\n1\n" + base64.b64encode(ROOT).decode(), "does not end with a newline"),
    ],
)
def test_malformed_checkpoint_bodies(text: str, problem: str) -> None:
    with pytest.raises(AuditError, match=problem):
        Checkpoint.from_text(text, "cp")


def test_sign_refuses_text_the_format_cannot_carry() -> None:
    key = PrivateKey.generate()
    with pytest.raises(AuditError, match="end in a newline"):
        sign_note("no newline", ORIGIN, key)
    with pytest.raises(AuditError, match="blank line"):
        sign_note("a\n\nb\n", ORIGIN, key)
    with pytest.raises(AuditError, match="key name"):
        sign_note("a\n", "has space", key)


# -- a real transparency log: Rekor, from the model-transparency v1.1.0 Sigstore bundle ---


def rekor_entry() -> dict[str, Any]:
    bundle = json.loads((VECTORS / "v1.1.0-sigstore" / "model.sig").read_text())
    entry: dict[str, Any] = bundle["verificationMaterial"]["tlogEntries"][0]
    return entry


def rekor_key_from_sigstore(key_hash: bytes) -> PublicKey:
    """Rekor's key from the production trusted root that ships inside `sigstore`."""
    from sigstore.models import TrustedRoot

    path = resources.files("sigstore") / "_store" / "https%3A%2F%2Ftuf-repo-cdn.sigstore.dev"
    trusted_root = path / "trusted_root.json"
    TrustedRoot.from_file(str(trusted_root))  # sigstore itself accepts this trusted root
    for tlog in json.loads(trusted_root.read_text())["tlogs"]:
        der = base64.b64decode(tlog["publicKey"]["rawBytes"])
        if hashlib.sha256(der).digest()[:4] == key_hash:
            assert base64.b64decode(tlog["logId"]["keyId"]) == hashlib.sha256(der).digest()
            key = serialization.load_der_public_key(der)
            assert isinstance(key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey)
            return PublicKey(key)
    raise AssertionError("Rekor key not found in sigstore's trusted root")


def test_rekor_inclusion_proof_verifies() -> None:
    entry = rekor_entry()
    proof = entry["inclusionProof"]
    leaf = leaf_hash(base64.b64decode(entry["canonicalizedBody"]))
    hashes = [base64.b64decode(h) for h in proof["hashes"]]
    root = base64.b64decode(proof["rootHash"])
    index, size = int(proof["logIndex"]), int(proof["treeSize"])
    verify_inclusion(leaf, index, size, hashes, root)
    with pytest.raises(AuditError):
        verify_inclusion(leaf, index - 1, size, hashes, root)
    with pytest.raises(AuditError):
        verify_inclusion(leaf_hash(b"something else"), index, size, hashes, root)
    assert root_from_inclusion_proof(leaf, index, size, hashes) == root


def test_rekor_checkpoint_parses_and_verifies_with_the_sigstore_key() -> None:
    proof = rekor_entry()["inclusionProof"]
    note = parse_note(proof["checkpoint"]["envelope"], "rekor checkpoint")
    cp = Checkpoint.from_text(note.text)
    assert cp.origin == "rekor.sigstore.dev - 1193050959916656506"
    assert cp.size == int(proof["treeSize"])
    assert cp.root == base64.b64decode(proof["rootHash"])
    (sig,) = note.signatures
    assert sig.name == "rekor.sigstore.dev"
    rekor = rekor_key_from_sigstore(sig.key_hash)
    assert note_key_hash(sig.name, rekor) == sig.key_hash
    assert open_checkpoint(note, rekor, name="rekor.sigstore.dev") == cp
    forged = SignedNote(note.text.replace(str(cp.size), str(cp.size + 1)), note.signatures)
    with pytest.raises(AuditError, match="does not verify"):
        open_checkpoint(forged, rekor)
