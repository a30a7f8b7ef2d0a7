"""cosign's encrypted private keys: real vectors from public repos, and self-built ones."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import nacl.secret
import nacl.utils
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from securenb.core.keys import KeyStore, PrivateKey, resolve_signing_key
from securenb.core.keys.cosign import COSIGN_LABELS
from securenb.core.keys.pem import load_private_key, load_public_key
from securenb.errors import KeyError_

VECTORS = Path(__file__).parent / "vectors" / "cosign"

# file, password published upstream, key id (hex SHA-256 of the SPKI DER)
REAL = [
    ("zarf-cosign.key", "test", "6884aeac4efcfb6ad5a459c09463882333e561b1686d746ad6b3f669a091ca80"),
    (
        "cosign-sigstore-label.key",
        "hello",
        "f1057bf3c114d5486f0bdb3c702596d6154158248980d4be49f6c61fdc62c591",
    ),
    (
        "cosign-cosign-label.key",
        "hello",
        "a6659c08b9909880c6e4bc51cab6fd7265673f67d614c20ba59a18957feb700d",
    ),
    (
        "cosign-ec-sec1.key",
        "hello",
        "6d9d4f02f673f80570d5ed2f61236060ce644751880a95f1e2482fa420f1e33e",
    ),
    (
        "sigstore-rs-ecdsa.key",
        "123",
        "00208863d9785226df9ad68ceb2ad5b43f1f5ddd686147f25116ee088726eb6d",
    ),
    (
        "sigstore-rs-empty-password.key",
        "",
        "0d8cd6794def5c5e3b42f37bf6ee29bb252ce269771cf3c0785d92fca7be586f",
    ),
]


@pytest.mark.parametrize(("name", "password", "key_id"), REAL)
def test_real_cosign_keys_decrypt(name: str, password: str, key_id: str) -> None:
    path = VECTORS / name
    key = load_private_key(path.read_bytes(), password.encode(), str(path))
    assert key.algorithm == "ecdsa-p256"
    assert key.key_id == key_id
    key.public.verify(key.sign(b"blob"), b"blob")


@pytest.mark.parametrize(("name", "password", "key_id"), REAL)
def test_real_cosign_keys_wrong_password(name: str, password: str, key_id: str) -> None:
    path = VECTORS / name
    with pytest.raises(KeyError_) as caught:
        load_private_key(path.read_bytes(), (password + "x").encode(), str(path))
    assert str(caught.value) == f"wrong passphrase for {path}"


def test_zarf_key_matches_its_published_cosign_pub(tmp_path: Path) -> None:
    published = load_public_key((VECTORS / "zarf-cosign.pub").read_bytes(), "zarf-cosign.pub")
    store = KeyStore(tmp_path / "keys")
    info = store.import_key(VECTORS / "zarf-cosign.key", "zarf", "test", "new passphrase")
    assert info.key_id == published.key_id
    assert store.export_public("zarf") == published.pem()
    signature = store.load("zarf", "new passphrase").sign(b"model bytes")
    published.verify(signature, b"model bytes")  # what `cosign verify-blob --key` checks


def test_cosign_sec1_key_is_cosigns_validecp256() -> None:
    sealed = load_private_key(
        (VECTORS / "cosign-ec-sec1.key").read_bytes(), b"hello", "cosign-ec-sec1.key"
    )
    plain = load_private_key(
        (VECTORS / "cosign-validecp256.pem").read_bytes(), None, "cosign-validecp256.pem"
    )
    assert sealed.key_id == plain.key_id


def test_file_reference_to_a_cosign_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COSIGN_PASSWORD", "test")
    ref = f"file:{VECTORS / 'zarf-cosign.key'}"
    key = resolve_signing_key(ref, passphrase_env="COSIGN_PASSWORD")
    assert key.key_id == REAL[0][2]


# -- cosign keys built here, with an independent scrypt (hashlib) ----------------------


def build_cosign_key(
    der: bytes,
    password: bytes,
    *,
    label: str = "ENCRYPTED SIGSTORE PRIVATE KEY",
    n: int = 2**15,
    r: int = 8,
    p: int = 1,
    edit: Any = None,
) -> bytes:
    """What go-securesystemslib's encrypted.Encrypt writes, wrapped as cosign does."""
    salt = os.urandom(32)
    key = hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, dklen=32, maxmem=2**28)
    nonce = nacl.utils.random(nacl.secret.SecretBox.NONCE_SIZE)
    sealed = nacl.secret.SecretBox(key).encrypt(der, nonce).ciphertext
    doc: dict[str, Any] = {
        "kdf": {
            "name": "scrypt",
            "params": {"N": n, "r": r, "p": p},
            "salt": base64.b64encode(salt).decode(),
        },
        "cipher": {"name": "nacl/secretbox", "nonce": base64.b64encode(nonce).decode()},
        "ciphertext": base64.b64encode(sealed).decode(),
    }
    if edit:
        edit(doc)
    body = base64.encodebytes(json.dumps(doc).encode()).decode()
    return f"-----BEGIN {label}-----\n{body}-----END {label}-----\n".encode()


def pkcs8_der(key: Any) -> bytes:
    return key.private_bytes(  # type: ignore[no-any-return]
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@pytest.mark.parametrize("label", COSIGN_LABELS)
@pytest.mark.parametrize(
    "make",
    [
        lambda: ec.generate_private_key(ec.SECP256R1()),
        lambda: ec.generate_private_key(ec.SECP384R1()),
        ed25519.Ed25519PrivateKey.generate,
    ],
)
def test_self_built_cosign_key(tmp_path: Path, label: str, make: Any) -> None:
    raw = make()
    pem = build_cosign_key(pkcs8_der(raw), b"built pass", label=label, n=2**16)
    source = tmp_path / "cosign.key"
    source.write_bytes(pem)
    store = KeyStore(tmp_path / "keys")
    info = store.import_key(source, "built", "built pass", "stored pass")
    assert info.key_id == PrivateKey(raw).key_id
    assert store.load("built", "stored pass").key_id == info.key_id
    with pytest.raises(KeyError_, match="wrong passphrase for"):
        store.import_key(source, "other", "built pasS", "stored pass")


def test_rsa_inside_cosign_wrapper_is_refused() -> None:
    der = pkcs8_der(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    with pytest.raises(KeyError_, match="unsupported key type RSA"):
        load_private_key(build_cosign_key(der, b"pw"), b"pw", "rsa.key")


def _set(path: str, value: Any) -> Any:
    def edit(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target = doc
        for part in parents:
            target = target[part]
        if value is KeyError:
            del target[last]
        else:
            target[last] = value

    return edit


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_set("kdf.params.N", 2**20), r"unsupported scrypt parameters N=1048576"),
        (_set("kdf.params.N", 2**14), r"unsupported scrypt parameters N=16384"),
        (_set("kdf.params.r", 16), r"unsupported scrypt parameters .* r=16"),
        (_set("kdf.params.p", 2), r"unsupported scrypt parameters .* p=2"),
        (_set("kdf.params.N", "32768"), r"unsupported scrypt parameters N='32768'"),
        (_set("kdf.name", "argon2"), r"unsupported cosign kdf 'argon2'"),
        (_set("cipher.name", "aes-gcm"), r"unsupported cosign cipher 'aes-gcm'"),
        (_set("cipher.nonce", base64.b64encode(b"short").decode()), r"nonce of 5 bytes"),
        (_set("kdf.salt", base64.b64encode(b"salt").decode()), r"salt of 4 bytes"),
        (_set("ciphertext", "not base64!"), r"'ciphertext' is not base64"),
        (_set("ciphertext", base64.b64encode(b"x" * 10).decode()), r"ciphertext is truncated"),
        (_set("kdf", KeyError), r"missing or invalid 'kdf'"),
        (_set("cipher.nonce", KeyError), r"'nonce' is not base64"),
    ],
)
def test_malformed_cosign_keys(edit: Any, message: str) -> None:
    pem = build_cosign_key(pkcs8_der(ec.generate_private_key(ec.SECP256R1())), b"pw", edit=edit)
    started = time.monotonic()
    with pytest.raises(KeyError_, match=message) as caught:
        load_private_key(pem, b"pw", "bad.key")
    assert str(caught.value).startswith("bad.key: ")
    assert time.monotonic() - started < 1  # refused before any expensive scrypt


def test_cosign_body_not_json() -> None:
    body = base64.encodebytes(b"{not json").decode()
    label = "ENCRYPTED COSIGN PRIVATE KEY"
    pem = f"-----BEGIN {label}-----\n{body}-----END {label}-----\n"
    with pytest.raises(KeyError_, match=r"bad\.key: corrupt cosign key: its body is not JSON"):
        load_private_key(pem.encode(), b"pw", "bad.key")


def test_cosign_key_needs_a_passphrase() -> None:
    pem = (VECTORS / "zarf-cosign.key").read_bytes()
    with pytest.raises(KeyError_, match="the key is encrypted: a passphrase is needed"):
        load_private_key(pem, None, "zarf-cosign.key")
    with pytest.raises(KeyError_, match="encrypted private key: give its public key"):
        load_public_key(pem, "zarf-cosign.key")


def test_cosign_ciphertext_tampered_is_caught() -> None:
    def flip(doc: dict[str, Any]) -> None:
        sealed = bytearray(base64.b64decode(doc["ciphertext"]))
        sealed[-1] ^= 1
        doc["ciphertext"] = base64.b64encode(bytes(sealed)).decode()

    pem = build_cosign_key(pkcs8_der(ed25519.Ed25519PrivateKey.generate()), b"pw", edit=flip)
    with pytest.raises(KeyError_, match=r"wrong passphrase for bad\.key"):
        load_private_key(pem, b"pw", "bad.key")
