"""Datasets on disk: envelope keys, manifest, random access, rotation, bad input, roles."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
from pathlib import Path

import pytest

import securenb.data as data
from securenb.data import streaming_aead as sa
from securenb.data.errors import AccessDenied, DataFormatError, DecryptionError
from securenb.data.manifest import sidecar_path
from securenb.errors import KeyError_

P4K = sa.AES256_GCM_HKDF_4KB


@pytest.fixture
def kek(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("TEST_KEK", base64.b64encode(os.urandom(32)).decode())
    return "env:TEST_KEK"


@pytest.fixture
def other_kek(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("OTHER_KEK", base64.b64encode(os.urandom(32)).decode())
    return "env:OTHER_KEK"


def make(tmp_path: Path, kek: str, size: int = 50_000, **kwargs: object) -> tuple[Path, bytes]:
    plaintext = os.urandom(size)
    src = tmp_path / "train.bin"
    src.write_bytes(plaintext)
    kwargs.setdefault("algorithm", P4K.name)
    result = data.encrypt(src, kek=kek, **kwargs)  # type: ignore[arg-type]
    return Path(result.ciphertext), plaintext


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_round_trip_and_manifest(tmp_path: Path, kek: str) -> None:
    enc, plaintext = make(tmp_path, kek, roles=["analyst"], source="s3://bucket/train.bin")
    assert enc.name == "train.bin.enc"
    record = json.loads(sidecar_path(enc).read_text())
    manifest = record["manifest"]
    assert manifest["ciphertext"]["sha256"] == hashlib.sha256(enc.read_bytes()).hexdigest()
    assert manifest["ciphertext"]["size"] == enc.stat().st_size
    assert manifest["roles"] == ["analyst"] and manifest["source"] == "s3://bucket/train.bin"
    assert manifest["encryption"]["algorithm"] == "AES256_GCM_HKDF_4KB"
    assert record["key"]["kek_uri"] == kek
    out = tmp_path / "out.bin"
    result = data.decrypt(enc, out, role="analyst")
    assert out.read_bytes() == plaintext and result.plaintext_size == len(plaintext)
    assert out.stat().st_mode & 0o777 == 0o600


def test_ciphertext_is_plain_tink(tmp_path: Path, kek: str) -> None:
    """With the data key and the recorded associated data, the tink package decrypts it."""
    from test_data_streaming import tink_decrypt

    enc, plaintext = make(tmp_path, kek)
    key = data.data_key_for(enc)
    ad = data.manifest_of(enc).encryption.associated_data.encode()
    assert tink_decrypt(key.material, P4K, enc.read_bytes(), ad) == plaintext


def test_random_access_decrypts_only_what_it_reads(
    tmp_path: Path, kek: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    enc, plaintext = make(tmp_path, kek, size=200_000)
    decrypted: list[int] = []
    original = sa.SegmentCipher.decrypt_into

    def counting(self: sa.SegmentCipher, index: int, *args: object) -> None:
        decrypted.append(index)
        original(self, index, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(sa.SegmentCipher, "decrypt_into", counting)
    with data.open_encrypted(enc) as f:
        assert f.seekable() and f.size == len(plaintext)
        f.seek(100_000)
        assert f.read(10) == plaintext[100_000:100_010]
        assert decrypted == [P4K.locate(100_000)[0]]
        f.seek(-5, io.SEEK_END)
        assert f.read() == plaintext[-5:]
        for start, length in [(0, 1), (4000, 200), (P4K.first_plaintext_size - 3, 10),
                              (123_456, 20_000), (199_990, 100)]:
            f.seek(start)
            assert f.read(length) == plaintext[start : start + length]
        f.seek(0)
        assert f.read() == plaintext
        assert f.digest_checked


def test_open_encrypted_checks_the_digest_on_a_full_read(tmp_path: Path, kek: str) -> None:
    enc, plaintext = make(tmp_path, kek)
    replace_under_same_key(enc, os.urandom(len(plaintext)))
    with data.open_encrypted(enc) as f, pytest.raises(DecryptionError, match="digest"):
        f.read()
    with pytest.raises(DecryptionError, match="digest"):
        data.open_encrypted(enc, verify_digest=True)


def replace_under_same_key(enc: Path, plaintext: bytes) -> None:
    """What a holder of the data key could do: a valid ciphertext that is not the recorded one."""
    key = data.data_key_for(enc)
    manifest = data.manifest_of(enc)
    out = io.BytesIO()
    sa.encrypt_stream(io.BytesIO(plaintext), out, key.material,
                      manifest.encryption.associated_data.encode(), P4K)
    enc.write_bytes(out.getvalue())


def test_decrypt_refuses_an_authentic_file_with_another_digest(tmp_path: Path, kek: str) -> None:
    enc, plaintext = make(tmp_path, kek)
    replace_under_same_key(enc, os.urandom(len(plaintext)))
    out = tmp_path / "out.bin"
    with pytest.raises(DecryptionError, match="digest is not the manifest's"):
        data.decrypt(enc, out)
    assert not out.exists() and leftovers(tmp_path) == []


# -- envelope and rotation ---------------------------------------------------------------

def test_rotate_rewraps_without_touching_the_ciphertext(
    tmp_path: Path, kek: str, other_kek: str
) -> None:
    enc, plaintext = make(tmp_path, kek)
    before = enc.read_bytes()
    key_before = data.data_key_for(enc).material
    result = data.rotate(enc, other_kek)
    assert enc.read_bytes() == before
    assert result.new_kek_uri == other_kek and result.old_kek_id != result.new_kek_id
    assert data.data_key_for(enc).material == key_before
    with pytest.raises(KeyError_, match="wrapped by KEK"):
        data.decrypt(enc, tmp_path / "x", kek=kek)
    data.decrypt(enc, tmp_path / "out.bin")  # the recorded URI is the new KEK
    assert (tmp_path / "out.bin").read_bytes() == plaintext


def test_wrong_kek(tmp_path: Path, kek: str, other_kek: str) -> None:
    enc, _ = make(tmp_path, kek)
    out = tmp_path / "out.bin"
    with pytest.raises(KeyError_) as info:
        data.decrypt(enc, out, kek=other_kek)
    assert "wrapped by KEK local:" in str(info.value) and str(enc) in str(info.value)
    assert not out.exists() and leftovers(tmp_path) == []


def test_wrong_data_key(tmp_path: Path, kek: str) -> None:
    enc, _ = make(tmp_path, kek)
    out = tmp_path / "out.bin"
    with pytest.raises(DecryptionError, match="segment 0"):
        data.decrypt(enc, out, data_key=data.DataKey.generate())
    assert not out.exists() and leftovers(tmp_path) == []


def test_edited_manifest_no_longer_unwraps(tmp_path: Path, kek: str) -> None:
    enc, _ = make(tmp_path, kek, roles=["admin"])
    path = sidecar_path(enc)
    record = json.loads(path.read_text())
    record["manifest"]["roles"] = ["admin", "intern"]
    path.write_text(json.dumps(record))
    with pytest.raises(DecryptionError, match="manifest was changed"):
        data.decrypt(enc, tmp_path / "out.bin", role="intern")


def test_tampered_wrapped_key(tmp_path: Path, kek: str) -> None:
    enc, _ = make(tmp_path, kek)
    path = sidecar_path(enc)
    record = json.loads(path.read_text())
    wrapped = bytearray(base64.b64decode(record["key"]["wrapped_key"]))
    wrapped[20] ^= 1
    record["key"]["wrapped_key"] = base64.b64encode(bytes(wrapped)).decode()
    path.write_text(json.dumps(record))
    with pytest.raises(DecryptionError, match="does not unwrap"):
        data.data_key_for(enc)


# -- bad input on disk: clear errors, no output, no temp files ---------------------------

def damage_and_decrypt(
    tmp_path: Path, enc: Path, content: bytes, fix_size: bool = False
) -> Exception:
    key = data.data_key_for(enc)
    enc.write_bytes(content)
    if fix_size:  # make the manifest agree on size too, to reach the segment checks
        path = sidecar_path(enc)
        record = json.loads(path.read_text())
        record["manifest"]["ciphertext"]["size"] = len(content)
        path.write_text(json.dumps(record))
    out = tmp_path / "out.bin"
    with pytest.raises(Exception) as info:
        data.decrypt(enc, out, data_key=key if fix_size else None)
    assert not out.exists(), "no plaintext may be written"
    assert leftovers(tmp_path) == []
    assert str(enc) in str(info.value)
    return info.value


def test_truncated_file(tmp_path: Path, kek: str) -> None:
    enc, _ = make(tmp_path, kek)
    ciphertext = enc.read_bytes()
    error = damage_and_decrypt(tmp_path, enc, ciphertext[:-100])
    assert isinstance(error, DecryptionError) and "truncated" in str(error)
    # past the size check (data key given directly, as in a sandbox): the segments catch it
    enc.write_bytes(ciphertext)
    error = damage_and_decrypt(tmp_path, enc, ciphertext[: 3 * P4K.segment_size], fix_size=True)
    assert isinstance(error, DecryptionError) and "does not authenticate" in str(error)


@pytest.mark.parametrize("case", ["reorder", "duplicate", "drop", "flip"])
def test_tampered_segments_on_disk(tmp_path: Path, kek: str, case: str) -> None:
    enc, _ = make(tmp_path, kek)
    ct = bytearray(enc.read_bytes())
    s = P4K.segment_size
    if case == "reorder":
        ct[s : 2 * s], ct[2 * s : 3 * s] = ct[2 * s : 3 * s], ct[s : 2 * s]
    elif case == "duplicate":
        ct[2 * s : 3 * s] = ct[s : 2 * s]
    elif case == "drop":
        del ct[2 * s : 3 * s]
    else:
        ct[5 * s + 7] ^= 0x80
    error = damage_and_decrypt(tmp_path, enc, bytes(ct), fix_size=case == "drop")
    assert isinstance(error, DecryptionError) and "does not authenticate" in str(error)


def test_header_from_another_file_on_disk(tmp_path: Path, kek: str) -> None:
    enc, _ = make(tmp_path, kek)
    other_src = tmp_path / "other.bin"
    other_src.write_bytes(os.urandom(3000))
    other = Path(data.encrypt(other_src, kek=kek, algorithm=P4K.name).ciphertext)
    spliced = other.read_bytes()[: P4K.header_size] + enc.read_bytes()[P4K.header_size :]
    error = damage_and_decrypt(tmp_path, enc, spliced)
    assert isinstance(error, DecryptionError) and "segment 0" in str(error)


def test_empty_file(tmp_path: Path, kek: str) -> None:
    enc, _ = make(tmp_path, kek)
    error = damage_and_decrypt(tmp_path, enc, b"")
    assert isinstance(error, DecryptionError) and "empty" in str(error)
    with pytest.raises(DataFormatError, match="empty"):
        sa.decrypt_stream(io.BytesIO(b""), io.BytesIO(), os.urandom(32))


def test_a_file_that_is_not_ours(tmp_path: Path) -> None:
    plain = tmp_path / "notes.csv"
    plain.write_text("a,b\n1,2\n")
    with pytest.raises(DataFormatError, match="no manifest"):
        data.decrypt(plain, tmp_path / "out.csv")
    assert not (tmp_path / "out.csv").exists()
    found = data.inspect(plain)
    assert found.kind == "unknown" and found.manifest is None


def test_a_foreign_file_under_a_manifest(tmp_path: Path, kek: str) -> None:
    enc, _ = make(tmp_path, kek)
    size = enc.stat().st_size
    error = damage_and_decrypt(tmp_path, enc, b"PAR1" + os.urandom(size - 4))
    assert isinstance(error, DataFormatError) and "header length byte" in str(error)


def test_output_is_replaced_only_on_success(tmp_path: Path, kek: str) -> None:
    enc, _plaintext = make(tmp_path, kek)
    out = tmp_path / "out.bin"
    out.write_bytes(b"previous")
    ct = bytearray(enc.read_bytes())
    ct[-1] ^= 1
    enc.write_bytes(bytes(ct))
    with pytest.raises(DecryptionError):
        data.decrypt(enc, out)
    assert out.read_bytes() == b"previous" and leftovers(tmp_path) == []


# -- roles, inspection, keys that never show ---------------------------------------------

def test_roles(tmp_path: Path, kek: str) -> None:
    enc, plaintext = make(tmp_path, kek, roles=["analyst", "trainer"])
    with pytest.raises(AccessDenied, match="role 'intern' may not decrypt"):
        data.decrypt(enc, tmp_path / "out", role="intern")
    with pytest.raises(AccessDenied):
        data.open_encrypted(enc, role="intern")
    with pytest.raises(AccessDenied):
        data.data_key_for(enc, role="intern")
    # leaving the role out does not open a restricted dataset (deny unless allowed)
    with pytest.raises(AccessDenied, match="only by roles analyst, trainer: give your role"):
        data.decrypt(enc, tmp_path / "out")
    with pytest.raises(AccessDenied, match="give your role"):
        data.data_key_for(enc)
    assert not (tmp_path / "out").exists()
    data.decrypt(enc, tmp_path / "out", role="trainer")
    assert (tmp_path / "out").read_bytes() == plaintext
    (tmp_path / "open").mkdir()
    unrestricted, _ = make(tmp_path / "open", kek)
    data.decrypt(unrestricted, tmp_path / "out2", role="anyone")  # no roles: unrestricted
    data.decrypt(unrestricted, tmp_path / "out3")


def test_inspect(tmp_path: Path, kek: str) -> None:
    enc, _ = make(tmp_path, kek, roles=["analyst"])
    found = data.inspect(enc, verify_digest=True)
    assert found.kind == "securenb-dataset" and found.digest_ok and not found.problems
    assert found.header == {"header_size": 40, "key_bits": 256}
    assert found.key is not None and "wrapped_key" not in found.key
    enc.write_bytes(enc.read_bytes()[:-1])
    found = data.inspect(enc, verify_digest=True)
    assert found.digest_ok is False and len(found.problems) == 2


def test_keys_never_show(tmp_path: Path, kek: str, capsys: pytest.CaptureFixture[str]) -> None:
    enc, _ = make(tmp_path, kek)
    key = data.data_key_for(enc)
    kek_obj = data.resolve_kek(kek)
    secrets = [key.to_secret(), key.material.hex(), os.environ["TEST_KEK"]]
    texts = [repr(key), str(key), repr(kek_obj), sidecar_path(enc).read_text(),
             json.dumps(data.inspect(enc).to_json())]
    for bad in (lambda: data.decrypt(enc, tmp_path / "o", data_key=data.DataKey.generate()),
                lambda: data.rotate(enc, "env:NOPE")):
        try:
            bad()
        except Exception as exc:
            texts.append(str(exc))
    texts.append(capsys.readouterr().out)
    for text in texts:
        for secret in secrets:
            assert secret not in text


def test_data_key_from_env_for_a_sandbox(
    tmp_path: Path, kek: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    enc, plaintext = make(tmp_path, kek)
    monkeypatch.setenv(data.DATA_KEY_ENV, data.data_key_for(enc).to_secret())
    monkeypatch.delenv("TEST_KEK")  # inside the sandbox there is no KEK
    key = data.DataKey.from_env()
    assert data.DATA_KEY_ENV not in os.environ  # child processes do not inherit it
    data.decrypt(enc, tmp_path / "out.bin", data_key=key)
    assert (tmp_path / "out.bin").read_bytes() == plaintext
    with pytest.raises(KeyError_, match="no data key"):
        data.DataKey.from_env()


def test_encrypt_refuses_to_overwrite_its_input(tmp_path: Path, kek: str) -> None:
    src = tmp_path / "a.bin"
    src.write_bytes(b"x")
    with pytest.raises(DataFormatError, match="onto itself"):
        data.encrypt(src, src, kek=kek)


def test_missing_input(tmp_path: Path, kek: str) -> None:
    with pytest.raises(DataFormatError, match="cannot read"):
        data.encrypt(tmp_path / "nope.csv", kek=kek)


def test_one_megabyte_default(tmp_path: Path, kek: str) -> None:
    src = tmp_path / "x.bin"
    plaintext = os.urandom(3 * (1 << 20) + 5)
    src.write_bytes(plaintext)
    result = data.encrypt(src, kek=kek)
    assert result.algorithm == "AES256_GCM_HKDF_1MB"
    with data.open_encrypted(result.ciphertext) as f:
        f.seek(2 * (1 << 20))
        assert f.read(100) == plaintext[2 * (1 << 20) : 2 * (1 << 20) + 100]


def test_inspect_flags_a_foreign_file_under_a_manifest(tmp_path: Path, kek: str) -> None:
    enc, _ = make(tmp_path, kek)
    enc.write_bytes(b"\x00" * enc.stat().st_size)
    found = data.inspect(enc)
    assert found.kind == "unknown"
    assert any("not a Tink AES-GCM-HKDF stream" in p for p in found.problems)
