"""cosign `sign-blob --key` signatures, checked against openssl (an independent implementation)."""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from securenb.core.keys import PrivateKey
from securenb.core.keys.pem import load_private_key
from securenb.core.workspace import Workspace
from securenb.signing import sign_blob, verify

VECTORS = Path(__file__).parent / "vectors" / "cosign"
needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl")


@pytest.fixture
def blob(workspace: Workspace) -> Path:
    path = workspace.root / "model.onnx"
    path.write_bytes(b"onnx" * 10_000)
    return path


@pytest.fixture(scope="module")
def zarf_key() -> PrivateKey:
    """A real cosign key (zarf's test key, password 'test'), decrypted once."""
    data = (VECTORS / "zarf-cosign.key").read_bytes()
    return load_private_key(data, b"test", "zarf-cosign.key")


@pytest.fixture
def zarf(workspace: Workspace) -> Workspace:
    """A workspace trusting zarf's cosign public key, not its own key."""
    (workspace.root / "securenb.toml").write_text(
        f'[trust]\nblob_keys = ["{VECTORS / "zarf-cosign.pub"}"]\nworkspace_key = false\n')
    return Workspace(workspace.root)


@needs_openssl
def test_our_signature_verifies_with_openssl(zarf: Workspace, zarf_key: PrivateKey,
                                             blob: Path) -> None:
    signed = sign_blob(zarf, blob, key=zarf_key)
    sig = Path(signed.signature)
    assert sig.name == "model.onnx.sig" and b"\n" not in sig.read_bytes()
    der = zarf.root / "sig.der"
    der.write_bytes(base64.b64decode(sig.read_bytes()))
    out = subprocess.run(["openssl", "dgst", "-sha256", "-verify", VECTORS / "zarf-cosign.pub",
                          "-signature", der, blob], capture_output=True, text=True, check=False)
    assert out.returncode == 0 and "Verified OK" in out.stdout
    result = verify(zarf, blob)
    assert result.verified and result.kind == "blob", result.lines()
    assert result.trust == f"trusted: listed in trust.blob_keys ({VECTORS / 'zarf-cosign.pub'})"


@needs_openssl
def test_openssl_made_signature_verifies(zarf: Workspace, zarf_key: PrivateKey,
                                         blob: Path) -> None:
    """What cosign writes: base64 of a DER ECDSA signature over SHA-256 of the blob."""
    key = zarf.root / "plain.pem"
    key.write_bytes(zarf_key.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    der = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key, blob],
                         capture_output=True, check=True).stdout
    (blob.parent / "model.onnx.sig").write_bytes(base64.b64encode(der) + b"\n")
    assert verify(zarf, blob).verified


def test_flipped_byte_wrong_key_and_garbage(zarf: Workspace, zarf_key: PrivateKey,
                                            blob: Path) -> None:
    sign_blob(zarf, blob, key=zarf_key)
    data = bytearray(blob.read_bytes())
    data[7] ^= 0x20
    blob.write_bytes(bytes(data))
    result = verify(zarf, blob)
    assert not result.verified
    assert result.problems == (
        f"{blob}.sig: the signature does not verify with any of 1 known key(s): {blob} changed "
        "since it was signed, the signature was edited, or another key signed it",)
    blob.write_bytes(b"onnx" * 10_000)
    sign_blob(zarf, blob)  # the workspace key, which this policy does not trust
    assert "does not verify with any of 1 known key(s)" in verify(zarf, blob).problems[0]
    (blob.parent / "model.onnx.sig").write_text("not base64 !")
    assert "not a base64 cosign signature" in verify(zarf, blob).problems[0]


def test_renamed_blob(zarf: Workspace, zarf_key: PrivateKey, blob: Path) -> None:
    """cosign signs bytes, not names: the workspace record binds the name."""
    sign_blob(zarf, blob, key=zarf_key)
    renamed = blob.with_name("other.onnx")
    blob.rename(renamed)
    (blob.parent / "model.onnx.sig").rename(blob.parent / "other.onnx.sig")
    result = verify(zarf, renamed)
    assert result.problems == ("renamed: this workspace recorded the signature for 'model.onnx', "
                               "it is now 'other.onnx'",)
