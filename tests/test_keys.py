"""KeyStore: encrypted storage, round trips, refusals and error messages."""

from __future__ import annotations

import base64
import json
import stat
import traceback
from datetime import datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from securenb.core.keys import ALGORITHMS, KeyStore, PrivateKey
from securenb.core.keys.cosign import decrypt_cosign_key
from securenb.core.keys.pem import load_private_key, parse_pem
from securenb.errors import KeyError_

PASS = "key-test passphrase 1"  # a test-only passphrase


@pytest.fixture
def store(tmp_path: Path) -> KeyStore:
    return KeyStore(tmp_path / "keys")


def assert_no_secret(exc: BaseException, *secrets: str | bytes) -> None:
    """Neither the message nor any exception chained to it may hold a secret."""
    messages = []
    current: BaseException | None = exc
    while current is not None:
        messages.append("".join(traceback.format_exception_only(type(current), current)))
        current = current.__cause__ or current.__context__
    for secret in secrets:
        value = secret.decode() if isinstance(secret, bytes) else secret
        assert all(value not in message for message in messages)


def pem_body_lines(pem: bytes) -> list[str]:
    return [line for line in pem.decode().splitlines() if not line.startswith("-----")]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_round_trip_each_algorithm(store: KeyStore, algorithm: str) -> None:
    info = store.create("k1", algorithm, PASS)  # type: ignore[arg-type]
    key = store.load("k1", PASS)
    assert key.algorithm == algorithm == info.algorithm
    assert key.key_id == info.key_id == store.public("k1").key_id
    store.public("k1").verify(key.sign(b"payload"), b"payload")

    key_file = store.directory / "k1.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    pem = key_file.read_bytes()
    assert pem.startswith(b"-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----")
    assert store.export_public("k1") == (store.directory / "k1.pub").read_bytes()
    assert store.export_public("k1").startswith(b"-----BEGIN PUBLIC KEY-----")
    # at rest: cosign's format with scrypt N >= 2^16 (not PKCS#8's 2048 PBKDF2 rounds),
    # which cosign itself can sign with; it holds a standard PKCS#8 DER key
    body = base64.b64decode("".join(pem_body_lines(pem)))
    assert json.loads(body)["kdf"]["params"]["N"] >= 2**16
    der = decrypt_cosign_key(body, PASS.encode(), str(key_file))
    other = serialization.load_der_private_key(der, None)
    assert PrivateKey(other).key_id == info.key_id  # type: ignore[arg-type]


def test_list_shows_public_facts_only(store: KeyStore) -> None:
    assert store.list() == []
    a = store.create("alpha", "ed25519", PASS)
    b = store.create("beta", passphrase=PASS)
    listed = store.list()
    assert [k.name for k in listed] == ["alpha", "beta"]
    assert listed == [a, b]
    assert {k.provider for k in listed} == {"keystore"}
    datetime.fromisoformat(listed[0].created.replace("Z", "+00:00"))
    dumped = json.dumps([k.to_json() for k in listed])
    assert PASS not in dumped
    for name in ("alpha", "beta"):
        for line in pem_body_lines((store.directory / f"{name}.key").read_bytes()):
            assert line not in dumped


def test_wrong_passphrase_names_the_file(store: KeyStore) -> None:
    store.create("k", passphrase=PASS)
    with pytest.raises(KeyError_) as caught:
        store.load("k", "not the passphrase")
    assert str(caught.value) == f"wrong passphrase for {store.directory / 'k.key'}"
    assert_no_secret(caught.value, PASS, "not the passphrase")
    assert caught.value.exit_code == 2
    with pytest.raises(KeyError_, match="wrong passphrase for"):
        store.load("k", "")


def test_truncated_key_file(store: KeyStore) -> None:
    store.create("k", passphrase=PASS)
    path = store.directory / "k.key"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(KeyError_, match="truncated") as caught:
        store.load("k", PASS)
    assert str(path) in str(caught.value)
    assert_no_secret(caught.value, PASS, *pem_body_lines(data))


def test_body_cut_but_end_line_kept(store: KeyStore) -> None:
    store.create("k", "ecdsa-p384", PASS)
    path = store.directory / "k.key"
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:2] + lines[-1:]))
    with pytest.raises(KeyError_, match="corrupt cosign key: its body is not JSON"):
        store.load("k", PASS)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: b"", "is empty"),
        (lambda d: d.replace(b"M", b"!", 1), "not base64"),
        (
            lambda d: d.replace(b"ENCRYPTED SIGSTORE PRIVATE KEY", b"SOMETHING ELSE"),
            "no private key",
        ),
        (lambda d: bytes(range(256)), "binary data"),
        (lambda d: b"just some text\n", "no PEM block"),
    ],
)
def test_corrupt_key_file_names_file_and_problem(
    store: KeyStore, damage: object, message: str
) -> None:
    store.create("k", passphrase=PASS)
    path = store.directory / "k.key"
    original = path.read_bytes()
    path.write_bytes(damage(original))  # type: ignore[operator]
    with pytest.raises(KeyError_, match=message) as caught:
        store.load("k", PASS)
    assert str(caught.value).startswith(str(path))
    assert_no_secret(caught.value, PASS, *pem_body_lines(original))


def test_corrupt_ciphertext_is_not_called_a_key(store: KeyStore) -> None:
    store.create("k", passphrase=PASS)
    path = store.directory / "k.key"
    lines = path.read_bytes().splitlines(keepends=True)
    line = bytearray(lines[2])
    line[5] = ord("A") if line[5] != ord("A") else ord("B")
    lines[2] = bytes(line)
    path.write_bytes(b"".join(lines))
    with pytest.raises(KeyError_) as caught:
        store.load("k", PASS)
    assert str(path) in str(caught.value)
    assert_no_secret(caught.value, PASS)


def test_refuses_to_overwrite_unless_asked(store: KeyStore) -> None:
    first = store.create("k", passphrase=PASS)
    with pytest.raises(KeyError_, match="already exists"):
        store.create("k", passphrase=PASS)
    with pytest.raises(KeyError_, match="already exists"):
        store.import_key(_pem(ec.generate_private_key(ec.SECP256R1())), "k", None, PASS)
    assert store.load("k", PASS).key_id == first.key_id
    second = store.create("k", "ed25519", PASS, overwrite=True)
    assert second.key_id != first.key_id
    assert store.load("k", PASS).key_id == second.key_id


@pytest.mark.parametrize("name", ["", "../evil", "a/b", "a\\b", ".hidden", "a:b", "x" * 65, "a..b"])
def test_names_are_validated(store: KeyStore, name: str) -> None:
    with pytest.raises(KeyError_, match="invalid key name"):
        store.create(name, passphrase=PASS)
    assert not store.directory.exists()


def test_empty_or_missing_passphrase_refused(store: KeyStore) -> None:
    with pytest.raises(KeyError_, match="non-empty passphrase"):
        store.create("k", passphrase="")
    with pytest.raises(KeyError_, match="non-empty passphrase"):
        store.create("k")


def test_missing_key(store: KeyStore) -> None:
    with pytest.raises(KeyError_, match="no key named 'nope'"):
        store.load("nope", PASS)
    with pytest.raises(KeyError_, match="no public key named 'nope'"):
        store.public("nope")


def test_key_and_pub_mismatch_is_refused(store: KeyStore) -> None:
    store.create("a", passphrase=PASS)
    store.create("b", passphrase=PASS)
    (store.directory / "a.pub").write_bytes((store.directory / "b.pub").read_bytes())
    with pytest.raises(KeyError_, match=r"does not match a\.pub"):
        store.load("a", PASS)


def test_unknown_algorithm(store: KeyStore) -> None:
    with pytest.raises(KeyError_, match="unknown key algorithm"):
        store.create("k", "rsa-2048", PASS)  # type: ignore[arg-type]


# -- import of PEM keys ---------------------------------------------------------


def _pem(key: object, fmt: str = "pkcs8", password: bytes | None = None) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    private_format = (
        serialization.PrivateFormat.PKCS8
        if fmt == "pkcs8"
        else serialization.PrivateFormat.TraditionalOpenSSL
    )
    return key.private_bytes(serialization.Encoding.PEM, private_format, encryption)  # type: ignore[attr-defined, no-any-return]


@pytest.mark.parametrize(
    ("make", "fmt", "password"),
    [
        (lambda: ec.generate_private_key(ec.SECP256R1()), "pkcs8", None),
        (lambda: ec.generate_private_key(ec.SECP384R1()), "pkcs8", b"in-pass"),
        (lambda: ed25519.Ed25519PrivateKey.generate(), "pkcs8", b"in-pass"),
        (lambda: ec.generate_private_key(ec.SECP256R1()), "sec1", None),
        (lambda: ec.generate_private_key(ec.SECP384R1()), "sec1", b"in-pass"),
    ],
)
def test_import_pem_formats(
    store: KeyStore, tmp_path: Path, make: object, fmt: str, password: bytes | None
) -> None:
    raw = make()  # type: ignore[operator]
    expected = PrivateKey(raw).key_id
    source = tmp_path / "in.pem"
    source.write_bytes(_pem(raw, fmt, password))
    info = store.import_key(source, "imported", password, PASS)
    assert info.key_id == expected
    assert store.load("imported", PASS).key_id == expected
    # from bytes as well, and re-encrypted under the new passphrase only
    store.import_key(source.read_bytes(), "again", password, PASS)
    assert store.load("again", PASS).key_id == expected
    if password:
        with pytest.raises(KeyError_, match="wrong passphrase"):
            store.load("again", password.decode())


def test_import_encrypted_without_or_with_wrong_passphrase(store: KeyStore, tmp_path: Path) -> None:
    source = tmp_path / "in.pem"
    source.write_bytes(_pem(ec.generate_private_key(ec.SECP256R1()), "pkcs8", b"right-one"))
    with pytest.raises(KeyError_, match="a passphrase is needed"):
        store.import_key(source, "k", None, PASS)
    with pytest.raises(KeyError_) as caught:
        store.import_key(source, "k", "wrong-one", PASS)
    assert str(caught.value) == f"wrong passphrase for {source}"
    assert_no_secret(caught.value, "right-one", "wrong-one", PASS)
    assert not store.exists("k")


def test_import_legacy_encrypted_sec1_wrong_passphrase(store: KeyStore, tmp_path: Path) -> None:
    source = tmp_path / "legacy.pem"
    source.write_bytes(_pem(ec.generate_private_key(ec.SECP256R1()), "sec1", b"right-one"))
    assert b"Proc-Type: 4,ENCRYPTED" in source.read_bytes()
    with pytest.raises(KeyError_, match="wrong passphrase for"):
        store.import_key(source, "k", "wrong-one", PASS)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            lambda: _pem(ec.generate_private_key(ec.SECP521R1())),
            "unsupported elliptic curve secp521r1",
        ),
        (
            lambda: _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048)),
            "unsupported key type RSA",
        ),
        (
            lambda: PrivateKey.generate().public.pem(),
            "holds a public key, not a private key",
        ),
        (
            lambda: (
                _pem(ec.generate_private_key(ec.SECP256R1()))
                + _pem(ec.generate_private_key(ec.SECP256R1()))
            ),
            "holds 2 private keys",
        ),
    ],
)
def test_import_refusals(store: KeyStore, tmp_path: Path, data: object, message: str) -> None:
    source = tmp_path / "in.pem"
    source.write_bytes(data())  # type: ignore[operator]
    with pytest.raises(KeyError_, match=message) as caught:
        store.import_key(source, "k", None, PASS)
    assert str(source) in str(caught.value)
    assert not store.exists("k")


def test_import_missing_file_and_folder(store: KeyStore, tmp_path: Path) -> None:
    with pytest.raises(KeyError_, match="no such key file"):
        store.import_key(tmp_path / "absent.pem", "k", None, PASS)
    with pytest.raises(KeyError_, match="is a folder"):
        store.import_key(tmp_path, "k", None, PASS)


def test_unencrypted_key_with_passphrase_given_still_loads() -> None:
    raw = ec.generate_private_key(ec.SECP256R1())
    key = load_private_key(_pem(raw), b"ignored", "plain.pem")
    assert key.key_id == PrivateKey(raw).key_id


def test_pem_with_leading_text_and_other_blocks() -> None:
    raw = ed25519.Ed25519PrivateKey.generate()
    public = PrivateKey(raw).public.pem()
    data = b"explanatory text\n" + public + _pem(raw)
    assert [b.label for b in parse_pem(data, "mixed.pem")] == ["PUBLIC KEY", "PRIVATE KEY"]
    assert load_private_key(data, None, "mixed.pem").key_id == PrivateKey(raw).key_id
