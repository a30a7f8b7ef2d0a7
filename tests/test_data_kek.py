"""KEK providers: env, file, OS keyring, KMS plug-ins (entry point group securenb.kms)."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keyring
import pytest
import tink
from keyring.backend import KeyringBackend
from tink import aead

import securenb.data as data
from securenb.data import kek as kek_mod
from securenb.data.errors import DecryptionError
from securenb.data.kms import TinkAeadKek
from securenb.errors import KeyError_


class MemoryKeyring(KeyringBackend):
    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.items: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.items.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.items[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self.items.pop((service, username), None)


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


def test_env_kek(monkeypatch: pytest.MonkeyPatch) -> None:
    material = os.urandom(32)
    monkeypatch.setenv("K", base64.urlsafe_b64encode(material).decode())
    kek = data.resolve_kek("env:K")
    assert kek.key_id == data.LocalKek(material).key_id and kek.uri == "env:K"
    wrapped = kek.wrap(b"k" * 32, b"ad")
    assert kek.unwrap(wrapped, b"ad") == b"k" * 32
    with pytest.raises(DecryptionError):
        kek.unwrap(wrapped, b"other")


def test_env_kek_missing_or_malformed(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(KeyError_, match="env:NOPE: environment variable NOPE is not set"):
        data.resolve_kek("env:NOPE")
    monkeypatch.setenv("SHORT", base64.b64encode(b"x" * 16).decode())
    with pytest.raises(KeyError_, match="holds 16 bytes"):
        data.resolve_kek("env:SHORT")
    monkeypatch.setenv("JUNK", "not base64 !!")
    with pytest.raises(KeyError_, match="does not hold a base64 KEK"):
        data.resolve_kek("env:JUNK")


def test_file_kek_created_0600_and_not_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "kek"
    created = data.create_local_kek(f"file:{path}")
    assert path.stat().st_mode & 0o777 == 0o600
    assert data.resolve_kek(f"file:{path}").key_id == created.key_id
    with pytest.raises(KeyError_, match="refusing to overwrite"):
        data.create_local_kek(f"file:{path}")


def test_file_kek_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "kek"
    path.write_text(base64.b64encode(os.urandom(32)).decode())
    path.chmod(0o644)
    with pytest.raises(KeyError_, match="accessible to other users"):
        data.resolve_kek(f"file:{path}")


def test_keyring_kek(memory_keyring: MemoryKeyring) -> None:
    created = data.create_local_kek("keyring:team/datasets")
    assert ("team", "datasets") in memory_keyring.items
    assert data.resolve_kek("keyring:team/datasets").key_id == created.key_id
    data.create_local_kek("keyring:solo")
    assert (kek_mod.KEYRING_SERVICE, "solo") in memory_keyring.items
    with pytest.raises(KeyError_, match="no secret 'absent'"):
        data.resolve_kek("keyring:absent")


def test_env_cannot_be_created() -> None:
    with pytest.raises(KeyError_, match="file:PATH or keyring:NAME"):
        data.create_local_kek("env:X")


class _EntryPoint:
    def __init__(self, name: str, factory: Any) -> None:
        self.name = name
        self._factory = factory

    def load(self) -> Any:
        return self._factory


def _local_tink_aead() -> Any:
    """A Tink AEAD standing in for a KMS key (same interface as Tink's KMS clients)."""
    aead.register()
    return tink.new_keyset_handle(aead.aead_key_templates.AES256_GCM).primitive(aead.Aead)


def test_kms_plugin_through_entry_points(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_kms = _local_tink_aead()
    calls: list[str] = []

    def factory(uri: str) -> TinkAeadKek:
        calls.append(uri)
        return TinkAeadKek(fake_kms, uri, "fake-kms")

    monkeypatch.setattr(
        kek_mod, "entry_points", lambda group: [_EntryPoint("fake-kms", factory)]
        if group == kek_mod.KMS_ENTRY_POINTS else []
    )
    uri = "fake-kms://projects/p/keys/k"
    src = tmp_path / "a.bin"
    src.write_bytes(os.urandom(5000))
    result = data.encrypt(src, kek=uri)
    assert result.kek_id == uri
    data.decrypt(result.ciphertext, tmp_path / "out")  # resolved again from the recorded URI
    assert (tmp_path / "out").read_bytes() == src.read_bytes()
    assert calls == [uri, uri]


def test_kms_plugin_failure_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    kek = TinkAeadKek(_local_tink_aead(), "fake-kms://k", "fake-kms")
    with pytest.raises(DecryptionError, match="fake-kms://k: the KMS did not unwrap"):
        kek.unwrap(b"garbage" * 10, b"ad")


def test_unknown_scheme_names_the_plugin_group(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kek_mod, "entry_points", lambda group: [])
    with pytest.raises(KeyError_, match=r"securenb\.kms; none installed"):
        data.resolve_kek("vault-kms://x")


def test_plugin_must_return_a_kek(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kek_mod, "entry_points", lambda group: [_EntryPoint("odd", lambda u: 42)])
    with pytest.raises(KeyError_, match="did not return a KeyEncryptionKey"):
        data.resolve_kek("odd://x")


def test_tink_kms_client_missing_extra_is_explained() -> None:
    from securenb.data import kms

    try:
        import google.cloud.kms  # noqa: F401
    except ImportError:
        with pytest.raises(KeyError_, match=r"pip install 'tink\[gcpkms\]'"):
            kms.gcp_kms("gcp-kms://projects/p/locations/l/keyRings/r/cryptoKeys/k")
    else:
        pytest.skip("google-cloud-kms is installed")


def test_local_kek_repr_hides_the_key() -> None:
    material = os.urandom(32)
    kek = data.LocalKek(material, "env:X")
    for text in (repr(kek), str(kek), kek.key_id):
        assert material.hex() not in text and base64.b64encode(material).decode() not in text
