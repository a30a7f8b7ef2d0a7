"""Red team: making the record key sign caller-chosen bytes without naming it.

Key separation (issue 11.1) refuses the key store's ``workspace`` key for
blobs and releases by its name and recorded purpose. An attacker who can edit
the project (``securenb.toml``, ``.securenb/keys``) but not read the passphrase
names the same key another way: a ``file:`` reference to the record key's own
file, or a ``blob``/``release`` key file that is a link to it (or a copy). The
user then runs ``cosign sign-blob`` on a crafted blob, and the signature is a
record: an attestation that verifies with the workspace's record key.
"""

from __future__ import annotations

import base64
import os
import shutil
from pathlib import Path

import pytest

from securenb.core.attest import IN_TOTO_PAYLOAD_TYPE, make_statement, pae, verify_envelope
from securenb.core.attest.statement import Subject
from securenb.core.canonical import canonical_json
from securenb.core.keys.purposes import BLOB_KEY, RECORD_KEY, RELEASE_KEY
from securenb.core.workspace import Workspace
from securenb.errors import AttestationError, SecurenbError
from securenb.signing import SignRequest, sign, sign_blob


def _forged_attestation(ws: Workspace) -> None:
    """Sign a crafted PAE as a blob and check it as an attestation of the workspace."""
    statement = make_statement([Subject("model.bin", "ab" * 32)],
                               "https://securenb.dev/attestation/signature/v1", {"forged": True})
    payload = canonical_json(statement)
    blob = ws.root / "innocent.bin"
    blob.write_bytes(pae(IN_TOTO_PAYLOAD_TYPE, payload))
    signed = sign_blob(ws, blob)
    sig = base64.b64decode(Path(signed.signature).read_bytes())
    envelope = {"payloadType": IN_TOTO_PAYLOAD_TYPE, "payload": base64.b64encode(payload).decode(),
                "signatures": [{"keyid": signed.signer.key_id,
                                "sig": base64.b64encode(sig).decode()}]}
    with pytest.raises(AttestationError):
        verify_envelope(envelope, [ws.public_key()])


def _refused_or_harmless(ws: Workspace) -> None:
    try:
        _forged_attestation(ws)
    except SecurenbError as exc:
        assert "record" in str(exc), exc


def test_a_file_reference_to_the_record_key_does_not_sign_blobs(workspace: Workspace) -> None:
    """Crossed on the first version: ``blob_key = "file:.securenb/keys/workspace.key"``."""
    record_file = workspace.keystore.key_path(RECORD_KEY)
    (workspace.root / "securenb.toml").write_text(f'[signing]\nblob_key = "file:{record_file}"\n')
    ws = Workspace(workspace.root)
    with pytest.raises(SecurenbError, match="record"):
        sign_blob(ws, ws.root / "securenb.toml")
    _refused_or_harmless(ws)


@pytest.mark.parametrize("how", ["symlink", "copy"])
def test_a_blob_key_file_that_is_the_record_key_does_not_sign(workspace: Workspace,
                                                              how: str) -> None:
    """Crossed on the first version: the blob key's files replaced by the record key's."""
    store = workspace.keystore
    for suffix in (".key", ".pub"):
        target = store.directory / f"{BLOB_KEY}{suffix}"
        source = store.directory / f"{RECORD_KEY}{suffix}"
        target.unlink()
        if how == "symlink":
            os.symlink(source.name, target)
        else:
            shutil.copyfile(source, target)
    ws = Workspace(workspace.root)
    (ws.root / "data.bin").write_bytes(b"data")
    with pytest.raises(SecurenbError, match="record"):
        sign_blob(ws, ws.root / "data.bin")
    _refused_or_harmless(ws)


def test_a_release_key_file_that_is_the_blob_key_does_not_sign_models(
        workspace: Workspace) -> None:
    """Release and blob keys are apart too: a blob signature never stands for a model's."""
    store = workspace.keystore
    for suffix in (".key", ".pub"):
        shutil.copyfile(store.directory / f"{BLOB_KEY}{suffix}",
                        store.directory / f"{RELEASE_KEY}{suffix}")
    ws = Workspace(workspace.root)
    model = ws.root / "model.bin"
    model.write_bytes(b"weights")
    with pytest.raises(SecurenbError, match="blob"):
        sign(ws, SignRequest(path=str(model)))
    assert not (ws.root / "model.bin.sig").exists()


def test_key_option_naming_the_record_key_file_is_refused(workspace: Workspace) -> None:
    """``cosign sign-blob --key file:.securenb/keys/workspace.key``: refused by key id."""
    blob = workspace.root / "data.bin"
    blob.write_bytes(b"data")
    ref = f"file:{workspace.keystore.key_path(RECORD_KEY)}"
    with pytest.raises(SecurenbError, match="record"):
        sign_blob(workspace, blob, key_ref=ref)
    with pytest.raises(SecurenbError, match="record"):
        sign(workspace, SignRequest(path=str(blob), key=ref))
    assert not (workspace.root / "data.bin.sig").exists()
