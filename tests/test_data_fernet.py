"""Legacy Fernet files (the SecureDataLoader recipe): read-only, and migrated to our format."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

import securenb.data as data
from securenb.data.errors import DataFormatError, DecryptionError
from securenb.data.fernet_legacy import plaintext_name
from securenb.errors import KeyError_


@pytest.fixture
def kek(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("TEST_KEK", base64.b64encode(os.urandom(32)).decode())
    return "env:TEST_KEK"


def legacy(tmp_path: Path, plaintext: bytes, name: str = "train.csv.enc") -> tuple[Path, bytes]:
    """What the recipe does: Fernet over the whole file."""
    key = Fernet.generate_key()
    path = tmp_path / name
    path.write_bytes(Fernet(key).encrypt(plaintext))
    return path, key


@pytest.mark.parametrize("size", [0, 1, 15, 16, 17, 1000, 3 * (1 << 20) + 7])
def test_read_fernet_matches_the_recipe(tmp_path: Path, size: int) -> None:
    plaintext = os.urandom(size)
    path, key = legacy(tmp_path, plaintext)
    assert data.read_fernet(path, key) == plaintext


def test_trailing_newline_is_tolerated(tmp_path: Path) -> None:
    path, key = legacy(tmp_path, b"a,b\n1,2\n")
    path.write_bytes(path.read_bytes() + b"\n")
    assert data.read_fernet(path, key) == b"a,b\n1,2\n"


def test_migrate(tmp_path: Path, kek: str, monkeypatch: pytest.MonkeyPatch) -> None:
    plaintext = b"age,income\n" + b"".join(b"%d,%d\n" % (i % 90, i * 7) for i in range(200_000))
    path, key = legacy(tmp_path, plaintext)
    monkeypatch.setenv("FERNET_KEY", key.decode())
    result = data.migrate(path, fernet="env:FERNET_KEY", kek=kek, roles=["analyst"])
    assert result.ciphertext == str(tmp_path / "train.csv.securenb.enc")
    assert result.name == "train.csv" and result.media_type == "text/csv"
    out = tmp_path / "back.csv"
    data.decrypt(result.ciphertext, out, role="analyst")
    assert out.read_bytes() == plaintext
    source = data.manifest_of(result.ciphertext).source
    assert source == "migrated from Fernet file train.csv.enc"


def test_migrate_never_replaces_the_legacy_file(tmp_path: Path, kek: str) -> None:
    path, key = legacy(tmp_path, b"x", name="data.csv.encrypted")
    assert data.migrate(path, fernet=key, kek=kek).ciphertext == str(tmp_path / "data.csv.enc")
    with pytest.raises(DataFormatError, match="give another output"):
        data.migrate(path, path, fernet=key, kek=kek)
    assert path.exists()


@pytest.mark.parametrize("damage", ["wrong-key", "flip", "truncate", "not-base64", "not-fernet"])
def test_bad_legacy_input_writes_nothing(tmp_path: Path, kek: str, damage: str) -> None:
    plaintext = os.urandom(2 * (1 << 20))
    path, key = legacy(tmp_path, plaintext)
    token = bytearray(path.read_bytes())
    if damage == "wrong-key":
        key = Fernet.generate_key()
    elif damage == "flip":
        token[len(token) // 2] = ord("A") if token[len(token) // 2] != ord("A") else ord("B")
    elif damage == "truncate":
        del token[-400:]
    elif damage == "not-base64":
        token[1000] = ord("*")
    else:
        token[:] = b"hello,world\n" * 1000
    path.write_bytes(bytes(token))
    out = tmp_path / "migrated.enc"
    expected = DataFormatError if damage in ("not-base64", "not-fernet") else DecryptionError
    with pytest.raises(expected) as info:
        data.migrate(path, out, fernet=key, kek=kek)
    assert str(path) in str(info.value)
    assert not out.exists()
    assert not Path(str(out) + ".manifest.json").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["train.csv.enc"]
    with pytest.raises(expected):
        data.read_fernet(path, key)


def test_bad_fernet_key(tmp_path: Path) -> None:
    path, _ = legacy(tmp_path, b"x")
    with pytest.raises(KeyError_, match="not a Fernet key"):
        data.read_fernet(path, b"short")
    with pytest.raises(DataFormatError, match="cannot read"):
        data.read_fernet(tmp_path / "missing", Fernet.generate_key())


def test_plaintext_name() -> None:
    assert plaintext_name(Path("a/train.csv.encrypted")) == "train.csv"
    assert plaintext_name(Path("x.parquet.fernet")) == "x.parquet"
    assert plaintext_name(Path("plain.bin")) == "plain.bin"


def test_inspect_recognises_fernet(tmp_path: Path) -> None:
    path, _ = legacy(tmp_path, b"hello")
    assert data.inspect(path).kind == "fernet-legacy"
