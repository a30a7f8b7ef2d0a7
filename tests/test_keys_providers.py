"""Key references: NAME, file:, env:, keyring: (a real file keyring), plug-ins, passphrases."""

from __future__ import annotations

import hashlib
import os
import pty
import select
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import keyring
import pytest
from cryptography.hazmat.primitives import serialization
from keyring.backend import KeyringBackend
from keyrings.alt.file import PlaintextKeyring  # type: ignore[import-untyped]

from securenb.core.keys import (
    ENTRY_POINT_GROUP,
    KeyStore,
    PrivateKey,
    read_passphrase,
    resolve_public_key,
    resolve_signing_key,
)
from securenb.errors import KeyError_

PASS = "provider-test passphrase"  # a test-only passphrase


def pem(key: PrivateKey, password: str | None = None) -> str:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password.encode())
        if password
        else serialization.NoEncryption()
    )
    return key.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    ).decode()


@pytest.fixture
def no_passphrase(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SECURENB_KEY_PASSPHRASE", raising=False)


# -- NAME: the workspace key store --------------------------------------------------


def test_name_from_keystore(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = KeyStore(tmp_path)
    info = store.create("signer", "ed25519", PASS)
    monkeypatch.setenv("MY_PASS", PASS)
    key = resolve_signing_key("signer", keystore=store, passphrase_env="MY_PASS")
    assert key.key_id == info.key_id
    assert resolve_public_key("signer", keystore=store).key_id == info.key_id
    monkeypatch.setenv("MY_PASS", "wrong")
    with pytest.raises(KeyError_, match="wrong passphrase for"):
        resolve_signing_key("signer", keystore=store, passphrase_env="MY_PASS")


def test_name_needs_a_keystore_and_an_existing_key(tmp_path: Path, no_passphrase: None) -> None:
    with pytest.raises(KeyError_, match="no key store was given"):
        resolve_signing_key("signer")
    # fails on the missing key before asking for any passphrase
    with pytest.raises(KeyError_, match="no key named 'absent'"):
        resolve_signing_key("absent", keystore=KeyStore(tmp_path))


@pytest.mark.parametrize("ref", ["../x", "file:", ":x", "a/b"])
def test_bad_references(ref: str) -> None:
    with pytest.raises(KeyError_, match="invalid key"):
        resolve_signing_key(ref)


# -- file: ---------------------------------------------------------------------------


def test_file_encrypted_and_plain(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_passphrase: None
) -> None:
    key = PrivateKey.generate("ecdsa-p384")
    encrypted, plain, public = tmp_path / "enc.pem", tmp_path / "plain.pem", tmp_path / "k.pub"
    encrypted.write_text(pem(key, PASS))
    plain.write_text(pem(key))
    public.write_bytes(key.public.pem())

    # a plain key needs no passphrase at all
    assert resolve_signing_key(f"file:{plain}").key_id == key.key_id
    with pytest.raises(KeyError_, match="set the environment variable SECURENB_KEY_PASSPHRASE"):
        resolve_signing_key(f"file:{encrypted}")
    monkeypatch.setenv("SECURENB_KEY_PASSPHRASE", PASS)
    assert resolve_signing_key(f"file:{encrypted}").key_id == key.key_id

    assert resolve_public_key(f"file:{public}").key_id == key.key_id
    assert resolve_public_key(f"file:{plain}").key_id == key.key_id
    with pytest.raises(KeyError_, match="encrypted private key: give its public key"):
        resolve_public_key(f"file:{encrypted}")
    with pytest.raises(KeyError_, match="no such key file"):
        resolve_signing_key(f"file:{tmp_path / 'absent.pem'}")


# -- env: ----------------------------------------------------------------------------


def test_env_plain_flattened_and_encrypted(
    monkeypatch: pytest.MonkeyPatch, no_passphrase: None
) -> None:
    key = PrivateKey.generate()
    monkeypatch.setenv("CI_SIGNING_KEY", pem(key))
    assert resolve_signing_key("env:CI_SIGNING_KEY").key_id == key.key_id
    assert resolve_public_key("env:CI_SIGNING_KEY").key_id == key.key_id

    monkeypatch.setenv("CI_SIGNING_KEY", pem(key).replace("\n", "\\n"))
    assert resolve_signing_key("env:CI_SIGNING_KEY").key_id == key.key_id

    monkeypatch.setenv("CI_SIGNING_KEY", pem(key, PASS))
    monkeypatch.setenv("CI_KEY_PASS", PASS)
    unlocked = resolve_signing_key("env:CI_SIGNING_KEY", passphrase_env="CI_KEY_PASS")
    assert unlocked.key_id == key.key_id

    monkeypatch.setenv("CI_KEY_PASS", "wrong")
    with pytest.raises(KeyError_) as caught:
        resolve_signing_key("env:CI_SIGNING_KEY", passphrase_env="CI_KEY_PASS")
    assert str(caught.value) == "wrong passphrase for environment variable CI_SIGNING_KEY"

    monkeypatch.delenv("CI_SIGNING_KEY")
    with pytest.raises(KeyError_, match="environment variable CI_SIGNING_KEY is not set"):
        resolve_signing_key("env:CI_SIGNING_KEY")


def test_env_garbage_never_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    secret_like = "-----BEGIN PRIVATE KEY-----\nTOPSECRETMATERIAL\n"
    monkeypatch.setenv("CI_SIGNING_KEY", secret_like)
    with pytest.raises(KeyError_, match="truncated") as caught:
        resolve_signing_key("env:CI_SIGNING_KEY")
    assert "TOPSECRETMATERIAL" not in str(caught.value)


# -- keyring: a real file-backed keyring, selected for the test --------------------


@pytest.fixture
def file_keyring(tmp_path: Path) -> Iterator[PlaintextKeyring]:
    previous: KeyringBackend = keyring.get_keyring()
    backend = PlaintextKeyring()
    backend.file_path = str(tmp_path / "keyring.cfg")
    keyring.set_keyring(backend)
    try:
        yield backend
    finally:
        keyring.set_keyring(previous)


def test_keyring_provider(
    file_keyring: PlaintextKeyring, monkeypatch: pytest.MonkeyPatch, no_passphrase: None
) -> None:
    key = PrivateKey.generate("ed25519")
    keyring.set_password("securenb", "laptop-key", pem(key))
    assert Path(file_keyring.file_path).is_file()
    assert resolve_signing_key("keyring:laptop-key").key_id == key.key_id
    assert resolve_public_key("keyring:laptop-key").key_id == key.key_id

    keyring.set_password("securenb", "locked-key", pem(key, PASS))
    monkeypatch.setenv("SECURENB_KEY_PASSPHRASE", PASS)
    assert resolve_signing_key("keyring:locked-key").key_id == key.key_id

    with pytest.raises(KeyError_, match=r"keyring entry 'absent' .* no such entry .*Plaintext"):
        resolve_signing_key("keyring:absent")


# -- plug-ins (entry point group securenb.key_providers) ------------------------------


@pytest.fixture
def plugin_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Install a test-only provider package the way pip would: module + dist-info."""
    root = tmp_path / "site"
    (root / "fake_kms-1.0.dist-info").mkdir(parents=True)
    (root / "fake_kms-1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: fake-kms\nVersion: 1.0\n"
    )
    (root / "fake_kms-1.0.dist-info" / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\n"
        "fakekms = fake_kms_provider:Provider\n"
        "notaprovider = fake_kms_provider:NotAProvider\n"
        "broken = fake_kms_provider:missing_attribute\n"
    )
    (root / "fake_kms_provider.py").write_text(
        textwrap.dedent(
            """
            from securenb.core.keys import PrivateKey

            KEYS = {}

            class Provider:
                def signing_key(self, location, passphrase_env):
                    return KEYS.setdefault(location, PrivateKey.generate())

                def public_key(self, location):
                    return self.signing_key(location, "").public

            class NotAProvider:
                pass
            """
        )
    )
    monkeypatch.syspath_prepend(str(root))
    return root


def test_plugin_provider(plugin_path: Path) -> None:
    key = resolve_signing_key("fakekms:projects/p/keys/k1")
    assert resolve_public_key("fakekms:projects/p/keys/k1").key_id == key.key_id
    with pytest.raises(KeyError_, match="lacks signing_key/public_key"):
        resolve_signing_key("notaprovider:x")
    with pytest.raises(KeyError_, match="plug-in 'broken' failed to load"):
        resolve_signing_key("broken:x")
    with pytest.raises(KeyError_, match=r"install a plug-in for 'gcpkms'"):
        resolve_signing_key("gcpkms:projects/p/keys/k1")


# -- passphrases --------------------------------------------------------------------


def test_passphrase_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOME_VAR", "from-env")
    assert read_passphrase("SOME_VAR") == "from-env"
    monkeypatch.setenv("SOME_VAR", "")
    assert read_passphrase("SOME_VAR") == ""  # cosign keys may have an empty password


def test_no_env_no_terminal_fails_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOME_VAR", raising=False)
    message = "no passphrase for key 'x': set the environment variable SOME_VAR"
    with pytest.raises(KeyError_, match=message):
        read_passphrase("SOME_VAR", purpose="key 'x'")


def test_prompt_on_a_terminal_hides_input() -> None:
    """A real pseudo-terminal: the prompt shows, the typed passphrase is not echoed."""
    typed = "typed-on-the-tty-42"
    code = (
        "import hashlib, sys\n"
        "from securenb.core.keys import read_passphrase\n"
        "value = read_passphrase('NO_SUCH_PASSPHRASE_VAR', purpose='key \"t\"')\n"
        "print('digest=' + hashlib.sha256(value.encode()).hexdigest(), flush=True)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "NO_SUCH_PASSPHRASE_VAR"}
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        start_new_session=True,
        cwd=Path(__file__).parent.parent,
    )
    os.close(slave)
    output = b""
    sent = False
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                output += chunk
            if not sent and b"Passphrase for key" in output:
                os.write(master, typed.encode() + b"\n")
                sent = True
            if proc.poll() is not None and not ready:
                break
    finally:
        proc.wait(timeout=30)
        os.close(master)
    text = output.decode(errors="replace")
    assert 'Passphrase for key "t"' in text
    assert "digest=" + hashlib.sha256(typed.encode()).hexdigest() in text
    assert typed not in text
