"""Model signatures: the OpenSSF model-signing format, interop both ways, every bad input."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
from pathlib import Path

import model_signing
import pytest

from securenb.core.keys import PrivateKey
from securenb.core.workspace import Workspace
from securenb.errors import SecurenbError
from securenb.signing import SIGNATURE_PREDICATE, VERIFICATION_PREDICATE, SignRequest, sign, verify
from securenb.signing.hashing import hash_model, root_digest

VECTORS = Path(__file__).parent / "vectors" / "model-transparency-v1.1.0"


@pytest.fixture
def model(workspace: Workspace) -> Path:
    folder = workspace.root / "models" / "bert"
    (folder / "tokenizer").mkdir(parents=True)
    (folder / "weights.bin").write_bytes(bytes(range(256)) * 64)
    (folder / "config.json").write_text('{"layers": 2}')
    (folder / "tokenizer" / "vocab.txt").write_text("a\nb\n")
    return folder


def fresh(ws: Workspace, policy: str | None = None) -> Workspace:
    """Re-read the workspace (and its policy file, written first if given)."""
    if policy is not None:
        (ws.root / "securenb.toml").write_text(policy)
    return Workspace(ws.root)


def other_key(ws: Workspace, name: str = "other") -> PrivateKey:
    """A second key store key (same passphrase variable as the workspace's)."""
    ws.keystore.create(name, "ecdsa-p256", os.environ["SECURENB_KEY_PASSPHRASE"])
    return ws.keystore.load(name, os.environ["SECURENB_KEY_PASSPHRASE"])


def test_sign_and_verify_folder(workspace: Workspace, model: Path) -> None:
    signed = sign(workspace, SignRequest(str(model)))
    assert signed.signature == str(model.parent / "bert.sig")
    release = workspace.keystore.public("release").key_id
    assert signed.signer.key_id == release and signed.files == 3
    result = verify(workspace, model)
    assert result.verified, result.lines()
    assert result.trust == "trusted: the workspace release key (trust.workspace_key)"
    assert result.signer is not None and result.signer.key_id == signed.signer.key_id
    assert result.signed_at and "recorded in this workspace" in result.signed_at
    # both are attestations and audit entries
    assert workspace.store.attestations_for(signed.digest, SIGNATURE_PREDICATE)
    assert workspace.store.attestations_for(signed.digest, VERIFICATION_PREDICATE)
    file_digest = hashlib.sha256((model / "weights.bin").read_bytes()).hexdigest()
    assert workspace.store.attestations_for(file_digest, SIGNATURE_PREDICATE), "files are subjects"
    actions = [r.entry.action for r in workspace.audit_log.tail(8)]
    assert "model.sign" in actions and "model.verify" in actions


def test_single_file_blake3(workspace: Workspace, model: Path) -> None:
    weights = model / "weights.bin"
    signed = sign(workspace, SignRequest(str(weights), algorithm="blake3"))
    assert signed.algorithm == "blake3" and Path(signed.signature).name == "weights.bin.sig"
    result = verify(workspace, weights)
    assert result.verified and result.algorithm == "blake3"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\x00")
    assert "content changed (blake3 signed" in verify(workspace, weights).problems[0]


def test_signature_inside_the_folder_is_ignored(workspace: Workspace, model: Path) -> None:
    sign(workspace, SignRequest(str(model), signature=str(model / "model.sig")))
    assert verify(workspace, model, signature=model / "model.sig").verified


def test_model_signing_accepts_what_we_sign(workspace: Workspace, model: Path) -> None:
    """Interop: the library's own verifier accepts our folder and single-file signatures."""
    pub = workspace.keystore.pub_path("release")
    for signature in (model / "model.sig", model.parent / "bert.sig"):
        sign(workspace, SignRequest(str(model), signature=str(signature)))
        model_signing.verifying.Config().use_elliptic_key_verifier(public_key=pub).verify(
            model, signature)
    sign(workspace, SignRequest(str(model / "config.json")))
    model_signing.verifying.Config().use_elliptic_key_verifier(public_key=pub).verify(
        model / "config.json", model / "config.json.sig")


def test_we_accept_what_model_signing_signs(workspace: Workspace, model: Path) -> None:
    key = PrivateKey.generate("ecdsa-p384")
    pem = workspace.root / "ms.pem"
    from cryptography.hazmat.primitives import serialization

    pem.write_bytes(key.key.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    (workspace.root / "ms.pub").write_bytes(key.public.pem())
    model_signing.signing.Config().use_elliptic_key_signer(private_key=pem).sign(
        model, model.parent / "bert.sig")
    ws = fresh(workspace, '[trust]\nkeys = ["ms.pub"]\n')
    result = verify(ws, model)
    assert result.verified, result.lines()
    assert result.trust == "trusted: listed in trust.keys (ms.pub)"


def test_shard_serialized_bundles_verify(workspace: Workspace, model: Path) -> None:
    """A layout we never produce (shards) is hashed by the library, and still checked."""
    pem = _plain_pem(workspace, key := PrivateKey.generate())
    (workspace.root / "ms.pub").write_bytes(key.public.pem())
    hashing = model_signing.hashing.Config().use_shard_serialization(shard_size=4096)
    model_signing.signing.Config().use_elliptic_key_signer(private_key=pem).set_hashing_config(
        hashing).sign(model, model.parent / "bert.sig")
    ws = fresh(workspace, '[trust]\nkeys = ["ms.pub"]\n')
    result = verify(ws, model)
    assert result.verified and result.files == 6, result.lines()
    data = bytearray((model / "weights.bin").read_bytes())
    data[5000] ^= 1
    (model / "weights.bin").write_bytes(bytes(data))
    assert verify(ws, model).problems[0].startswith(f"{model}/weights.bin:4096:8192: content")


def test_payload_matches_the_library(workspace: Workspace, model: Path) -> None:
    """Our hashing builds the manifest the library would build (same subject digest)."""
    ours = hash_model(model)
    theirs = model_signing.hashing.Config().hash(model)
    assert ours == theirs and root_digest(ours) == root_digest(theirs)


@pytest.mark.parametrize("kind", ["elliptic-key", "certificate", "sigstore"])
def test_vectors_verify_offline(workspace: Workspace, kind: str) -> None:
    keys = VECTORS / "keys"
    ws = fresh(workspace, f"""
[trust]
keys = ["{keys / 'signing-key-pub.pem'}"]
[[trust.identities]]
issuer = "https://sigstore.verify.ibm.com/oauth2"
subject = "stefanb@us.ibm.com"
[[trust.certificate_roots]]
roots = ["{keys / 'ca-cert.pem'}"]
identities = [{{ subject = "CN=intermediate-ca", issuer = "CN=intermediate-ca" }}]
""")
    folder = VECTORS / f"v1.1.0-{kind}"
    result = verify(ws, folder, signature=folder / "model.sig")
    assert result.verified, result.lines()
    assert result.files == 2 and result.algorithm == "sha256"
    assert any("ignore-me: present but not covered" in n for n in result.notes)
    if kind == "sigstore":
        assert result.signer is not None and result.signer.identity == "stefanb@us.ibm.com"
        assert result.signed_at == "2025-10-10T02:12:20Z (Rekor)"


# -- bad input ----------------------------------------------------------------------------
def test_flipped_byte(workspace: Workspace, model: Path) -> None:
    sign(workspace, SignRequest(str(model)))
    data = bytearray((model / "weights.bin").read_bytes())
    data[1000] ^= 0x01
    (model / "weights.bin").write_bytes(bytes(data))
    result = verify(workspace, model)
    assert not result.verified and len(result.problems) == 1
    assert result.problems[0].startswith(f"{model}/weights.bin: content changed (sha256 signed ")
    assert "weights.bin: content changed" in result.summary()


def test_added_and_removed_files(workspace: Workspace, model: Path) -> None:
    sign(workspace, SignRequest(str(model)))
    (model / "tokenizer" / "vocab.txt").unlink()
    (model / "evil.py").write_text("import os")
    problems = verify(workspace, model).problems
    assert f"{model}/tokenizer/vocab.txt: file removed (it was signed)" in problems
    assert f"{model}/evil.py: file added (it is not signed)" in problems


def test_renamed_model(workspace: Workspace, model: Path) -> None:
    sign(workspace, SignRequest(str(model)))
    renamed = model.with_name("bert-large")
    model.rename(renamed)
    (model.parent / "bert.sig").rename(model.parent / "bert-large.sig")
    result = verify(workspace, renamed)
    assert not result.verified
    assert result.problems == ("model renamed: the signature is for 'bert', the model is now "
                               "named 'bert-large'",)
    assert "this workspace recorded the signature for 'models/bert'" in result.notes[0]


def test_moved_model_is_a_note(workspace: Workspace, model: Path) -> None:
    sign(workspace, SignRequest(str(model)))
    (workspace.root / "deploy").mkdir()
    moved = workspace.root / "deploy" / "bert"
    shutil.move(model, moved)
    shutil.move(model.parent / "bert.sig", moved.parent / "bert.sig")
    result = verify(workspace, moved)
    assert result.verified and result.notes == (
        "this workspace recorded the signature for 'models/bert'",)


def test_key_not_in_the_policy(workspace: Workspace, model: Path) -> None:
    key = other_key(workspace)
    sign(workspace, SignRequest(str(model), key="other"))
    result = verify(workspace, model)
    assert not result.verified and result.trust == "untrusted: unknown key"
    assert "signed by a key that is not trusted or known here" in result.problems[0]
    # given on the command line: valid, but still untrusted
    pub = workspace.keystore.pub_path("other")
    result = verify(workspace, model, keys=[str(pub)])
    assert not result.verified and result.signer and result.signer.key_id == key.key_id
    assert result.problems == (f"valid signature, but key {key.key_id[:16]} (--key {pub}) is "
                               "not in trust.keys of the default policy",)
    # listed by key id: trusted
    ws = fresh(workspace, f'[trust]\nkeys = ["sha256:{key.key_id}"]\nworkspace_key = false\n')
    assert verify(ws, model).verified
    assert not verify(ws, model, keys=[]).problems


def test_workspace_key_can_be_distrusted(workspace: Workspace, model: Path) -> None:
    sign(workspace, SignRequest(str(model)))
    ws = fresh(workspace, "[trust]\nworkspace_key = false\n")
    result = verify(ws, model)
    assert not result.verified and "not trusted or known here" in result.problems[0]


def _edit_bundle(sig: Path, edit: str) -> None:
    bundle = json.loads(sig.read_text())
    envelope = bundle["dsseEnvelope"]
    if edit == "payload":
        statement = json.loads(base64.b64decode(envelope["payload"]))
        statement["predicate"]["resources"][0]["digest"] = "0" * 64
        envelope["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    elif edit == "signature":
        raw = bytearray(base64.b64decode(envelope["signatures"][0]["sig"]))
        raw[-1] ^= 0x01
        envelope["signatures"][0]["sig"] = base64.b64encode(bytes(raw)).decode()
    elif edit == "hint":
        bundle["verificationMaterial"]["publicKey"]["hint"] = "ab" * 32
    sig.write_text(json.dumps(bundle) if edit != "json" else sig.read_text()[:-20])


@pytest.mark.parametrize(("edit", "message"), [
    ("payload", "the signature does not verify with"),
    ("signature", "the signature does not verify with"),
    ("hint", "signed by a key that is not trusted or known here"),
    ("json", "not a Sigstore bundle (edited or corrupt"),
])
def test_edited_bundle(workspace: Workspace, model: Path, edit: str, message: str) -> None:
    sign(workspace, SignRequest(str(model)))
    _edit_bundle(model.parent / "bert.sig", edit)
    result = verify(workspace, model)
    assert not result.verified and message in result.problems[0], result.problems
    sig_digest = hashlib.sha256((model.parent / "bert.sig").read_bytes()).hexdigest()
    assert workspace.store.attestations_for(sig_digest, VERIFICATION_PREDICATE)  # recorded too


def test_links_are_refused(workspace: Workspace, model: Path) -> None:
    (model / "link").symlink_to(model / "config.json")
    with pytest.raises(SecurenbError, match="link: is a symbolic link"):
        sign(workspace, SignRequest(str(model)))
    (model / "link").unlink()
    sign(workspace, SignRequest(str(model)))
    (model / "link").symlink_to("/etc/passwd")
    assert "link: is a symbolic link" in verify(workspace, model).problems[0]


def test_missing_signature_or_model_cannot_be_checked(workspace: Workspace, model: Path) -> None:
    with pytest.raises(SecurenbError, match=r"bert.sig: cannot read the signature") as info:
        verify(workspace, model)
    assert info.value.exit_code == 2


def test_ed25519_key_refused_for_models(workspace: Workspace, model: Path) -> None:
    with pytest.raises(SecurenbError, match=r"need an ECDSA P-256 or P-384 key"):
        sign(workspace, SignRequest(str(model), key="file:" + str(
            _plain_pem(workspace, PrivateKey.generate("ed25519")))))


def _plain_pem(ws: Workspace, key: PrivateKey) -> Path:
    from cryptography.hazmat.primitives import serialization

    path = ws.root / "plain.pem"
    path.write_bytes(key.key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return path
