"""The streaming AEAD format: interoperability with the `tink` package, both ways."""

from __future__ import annotations

import io
import os

import pytest
import tink
from tink import secret_key_access, streaming_aead
from tink.proto import aes_gcm_hkdf_streaming_pb2, common_pb2, tink_pb2

from securenb.data import streaming_aead as sa
from securenb.data.errors import DataFormatError, DecryptionError

streaming_aead.register()

P4K = sa.AES256_GCM_HKDF_4KB
P1M = sa.AES256_GCM_HKDF_1MB


def tink_primitive(key: bytes, params: sa.StreamingParams) -> streaming_aead.StreamingAead:
    """A tink StreamingAead over our raw key material (a one-key RAW keyset)."""
    proto_key = aes_gcm_hkdf_streaming_pb2.AesGcmHkdfStreamingKey(
        version=0,
        key_value=key,
        params=aes_gcm_hkdf_streaming_pb2.AesGcmHkdfStreamingParams(
            ciphertext_segment_size=params.segment_size,
            derived_key_size=params.key_size,
            hkdf_hash_type=common_pb2.SHA256,
        ),
    )
    keyset = tink_pb2.Keyset(
        primary_key_id=7,
        key=[tink_pb2.Keyset.Key(
            key_data=tink_pb2.KeyData(
                type_url="type.googleapis.com/google.crypto.tink.AesGcmHkdfStreamingKey",
                value=proto_key.SerializeToString(),
                key_material_type=tink_pb2.KeyData.SYMMETRIC,
            ),
            status=tink_pb2.ENABLED, key_id=7, output_prefix_type=tink_pb2.RAW,
        )],
    )
    handle = tink.proto_keyset_format.parse(keyset.SerializeToString(), secret_key_access.TOKEN)
    return handle.primitive(streaming_aead.StreamingAead)


class _Keep(io.BytesIO):
    def close(self) -> None:  # tink closes the destination; keep the bytes readable
        pass


def tink_encrypt(key: bytes, params: sa.StreamingParams, plaintext: bytes, ad: bytes) -> bytes:
    out = _Keep()
    with tink_primitive(key, params).new_encrypting_stream(out, ad) as stream:
        stream.write(plaintext)
    return out.getvalue()


def tink_decrypt(key: bytes, params: sa.StreamingParams, ciphertext: bytes, ad: bytes) -> bytes:
    with tink_primitive(key, params).new_decrypting_stream(io.BytesIO(ciphertext), ad) as stream:
        return bytes(stream.read())


def boundary_sizes(p: sa.StreamingParams) -> list[int]:
    first, seg = p.first_plaintext_size, p.plaintext_segment_size
    return [0, 1, first - 1, first, first + 1, first + seg - 1, first + seg, first + seg + 1,
            first + 3 * seg + 17]


SIZES_4K = boundary_sizes(P4K)
AD = [b"", b"securenb/dataset/v1/abc"]


@pytest.mark.parametrize("size", SIZES_4K)
@pytest.mark.parametrize("ad", AD)
def test_tink_encrypts_we_decrypt(size: int, ad: bytes) -> None:
    key, plaintext = os.urandom(32), os.urandom(size)
    ciphertext = tink_encrypt(key, P4K, plaintext, ad)
    assert len(ciphertext) == P4K.ciphertext_size(size)
    assert sa.decrypt_bytes(ciphertext, key, ad, P4K) == plaintext
    out = io.BytesIO()
    result = sa.decrypt_stream(io.BytesIO(ciphertext), out, key, ad, P4K)
    assert out.getvalue() == plaintext
    assert result.plaintext_size == size and result.ciphertext_size == len(ciphertext)


@pytest.mark.parametrize("size", SIZES_4K)
@pytest.mark.parametrize("ad", AD)
def test_we_encrypt_tink_decrypts(size: int, ad: bytes) -> None:
    key, plaintext = os.urandom(32), os.urandom(size)
    in_memory = bytes(sa.encrypt_bytes(plaintext, key, ad, P4K))
    assert len(in_memory) == P4K.ciphertext_size(size)
    assert tink_decrypt(key, P4K, in_memory, ad) == plaintext
    out = io.BytesIO()
    sa.encrypt_stream(io.BytesIO(plaintext), out, key, ad, P4K)
    assert tink_decrypt(key, P4K, out.getvalue(), ad) == plaintext


@pytest.mark.parametrize("size", [0, P1M.first_plaintext_size, P1M.first_plaintext_size + 1,
                                  P1M.first_plaintext_size + 2 * P1M.plaintext_segment_size + 5])
def test_one_megabyte_segments_both_ways(size: int) -> None:
    key, plaintext, ad = os.urandom(32), os.urandom(size), b"ad"
    assert sa.decrypt_bytes(tink_encrypt(key, P1M, plaintext, ad), key, ad, P1M) == plaintext
    assert tink_decrypt(key, P1M, bytes(sa.encrypt_bytes(plaintext, key, ad, P1M)), ad) == plaintext


def test_aes128_variant_interoperates() -> None:
    params = sa.AES128_GCM_HKDF_4KB
    key, plaintext = os.urandom(16), os.urandom(10_000)
    ours = bytes(sa.encrypt_bytes(plaintext, key, b"", params))
    assert tink_decrypt(key, params, ours, b"") == plaintext
    theirs = tink_encrypt(key, params, plaintext, b"")
    assert sa.decrypt_bytes(theirs, key, b"", params) == plaintext


def test_header_layout_matches_tink() -> None:
    ciphertext = tink_encrypt(os.urandom(32), P1M, b"x", b"")
    assert ciphertext[0] == P1M.header_size == 40
    assert len(ciphertext) == 40 + 1 + 16


def test_stream_from_a_pipe_like_source() -> None:
    """A source that returns short reads (a pipe) still yields Tink's segmentation."""

    class Trickle(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self._data = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
            chunk = self._data.read(min(len(buffer), 777))
            buffer[: len(chunk)] = chunk
            return len(chunk)

    key = os.urandom(32)
    plaintext = os.urandom(P4K.first_plaintext_size + P4K.plaintext_segment_size)
    out = io.BytesIO()
    sa.encrypt_stream(Trickle(plaintext), out, key, b"", P4K)
    assert tink_decrypt(key, P4K, out.getvalue(), b"") == plaintext


def test_digest_is_sha256_of_the_ciphertext() -> None:
    import hashlib

    key, plaintext = os.urandom(32), os.urandom(50_000)
    out = io.BytesIO()
    result = sa.encrypt_stream(io.BytesIO(plaintext), out, key, b"", P4K)
    assert result.ciphertext_sha256 == hashlib.sha256(out.getvalue()).hexdigest()


def test_layout_arithmetic() -> None:
    for size in SIZES_4K:
        ct = P4K.ciphertext_size(size)
        layout = P4K.layout(ct, "x")
        assert layout.plaintext_size == size
        assert layout.segments == P4K.segment_count(size)
        for index in range(layout.segments):
            assert P4K.locate(P4K.plaintext_offset(index)) == (index, 0)


# -- bad input at the format level -------------------------------------------------------------

def segments_of(ciphertext: bytes, p: sa.StreamingParams) -> tuple[bytes, list[bytes]]:
    header = ciphertext[: p.header_size]
    body = ciphertext[p.header_size :]
    first = p.segment_size - p.header_size
    parts = [body[:first]]
    rest = body[first:]
    parts += [rest[i : i + p.segment_size] for i in range(0, len(rest), p.segment_size)]
    return header, parts


def four_segments() -> tuple[bytes, bytes, bytes]:
    key = os.urandom(32)
    plaintext = os.urandom(P4K.first_plaintext_size + 3 * P4K.plaintext_segment_size - 100)
    return key, plaintext, bytes(sa.encrypt_bytes(plaintext, key, b"", P4K))


def decrypt_collecting(ciphertext: bytes, key: bytes) -> tuple[Exception | None, bytes]:
    out = io.BytesIO()
    try:
        sa.decrypt_stream(io.BytesIO(ciphertext), out, key, b"", P4K, name="f.enc")
    except Exception as exc:
        return exc, out.getvalue()
    return None, out.getvalue()


def test_wrong_key_fails_on_the_first_segment() -> None:
    _, _, ciphertext = four_segments()
    error, written = decrypt_collecting(ciphertext, os.urandom(32))
    assert isinstance(error, DecryptionError) and "segment 0" in str(error)
    assert "wrong key" in str(error) and "f.enc" in str(error)
    assert written == b""


@pytest.mark.parametrize("case", ["swap", "duplicate", "drop-middle", "drop-last",
                                  "append-copy"])
def test_reordered_duplicated_dropped_segments(case: str) -> None:
    key, plaintext, ciphertext = four_segments()
    header, parts = segments_of(ciphertext, P4K)
    assert len(parts) == 4
    if case == "swap":
        parts[1], parts[2] = parts[2], parts[1]
    elif case == "duplicate":
        parts[2] = parts[1]
    elif case == "drop-middle":
        del parts[2]
    elif case == "drop-last":
        del parts[3]
    else:
        parts.insert(3, parts[2])
    error, written = decrypt_collecting(header + b"".join(parts), key)
    assert isinstance(error, DecryptionError), case
    assert "does not authenticate" in str(error)
    # only segments that authenticated were written, and they are the true plaintext
    assert plaintext.startswith(written)
    assert len(written) < len(plaintext)


@pytest.mark.parametrize("where", ["length-byte", "salt", "nonce-prefix", "first-segment",
                                   "middle-segment", "last-tag"])
def test_flipped_bit(where: str) -> None:
    key, plaintext, ciphertext = four_segments()
    offsets = {
        "length-byte": 0, "salt": 5, "nonce-prefix": P4K.header_size - 2,
        "first-segment": P4K.header_size + 10, "middle-segment": 2 * P4K.segment_size + 100,
        "last-tag": len(ciphertext) - 1,
    }
    damaged = bytearray(ciphertext)
    damaged[offsets[where]] ^= 0x04
    error, written = decrypt_collecting(bytes(damaged), key)
    expected = DataFormatError if where == "length-byte" else DecryptionError
    assert isinstance(error, expected), (where, error)
    assert plaintext.startswith(written)
    with pytest.raises(expected):
        sa.decrypt_bytes(bytes(damaged), key, b"", P4K)


def test_header_from_another_file() -> None:
    key, _, ciphertext = four_segments()
    other = bytes(sa.encrypt_bytes(os.urandom(100), key, b"", P4K))
    spliced = other[: P4K.header_size] + ciphertext[P4K.header_size :]
    error, written = decrypt_collecting(spliced, key)
    assert isinstance(error, DecryptionError) and "segment 0" in str(error)
    assert written == b""


@pytest.mark.parametrize("cut", [1, 15, 16, 17, P4K.segment_size])
def test_truncated(cut: int) -> None:
    key, plaintext, ciphertext = four_segments()
    error, written = decrypt_collecting(ciphertext[:-cut], key)
    assert isinstance(error, DecryptionError)
    assert plaintext.startswith(written) and len(written) < len(plaintext)
    with pytest.raises(DecryptionError):
        sa.decrypt_bytes(ciphertext[:-cut], key, b"", P4K)


def test_truncated_to_the_header() -> None:
    key, _, ciphertext = four_segments()
    error, written = decrypt_collecting(ciphertext[: P4K.header_size], key)
    assert isinstance(error, DecryptionError) and "truncated" in str(error)
    assert written == b""


def test_empty_input() -> None:
    error, _written = decrypt_collecting(b"", os.urandom(32))
    assert isinstance(error, DataFormatError) and "empty" in str(error)
    with pytest.raises(DataFormatError, match="empty"):
        sa.decrypt_bytes(b"", os.urandom(32), b"", P4K)


@pytest.mark.parametrize("content", [b"a,b,c\n1,2,3\n" * 100, b"\x28" + os.urandom(5000)])
def test_not_ours(content: bytes) -> None:
    error, written = decrypt_collecting(content, os.urandom(32))
    assert isinstance(error, (DataFormatError, DecryptionError))
    assert written == b""


def test_wrong_associated_data() -> None:
    key = os.urandom(32)
    ciphertext = bytes(sa.encrypt_bytes(b"hello" * 1000, key, b"dataset-a", P4K))
    with pytest.raises(DecryptionError, match="segment 0"):
        sa.decrypt_bytes(ciphertext, key, b"dataset-b", P4K)


def test_failed_segment_leaves_no_plaintext_in_the_buffer() -> None:
    key, _, ciphertext = four_segments()
    damaged = bytearray(ciphertext)
    damaged[P4K.header_size + 3] ^= 1
    cipher = sa.SegmentCipher(P4K, key, bytes(damaged[: P4K.header_size]), b"", "x")
    out = bytearray(b"\xff" * P4K.first_plaintext_size)
    with pytest.raises(DecryptionError):
        cipher.decrypt_into(0, False, bytes(damaged[P4K.header_size : P4K.segment_size]),
                            memoryview(out))
    assert out == bytes(len(out))


def test_short_key_is_refused() -> None:
    with pytest.raises(DecryptionError, match="needs at least 32"):
        sa.decrypt_bytes(bytes(sa.encrypt_bytes(b"x", os.urandom(32))), os.urandom(16))


def test_into_reused_buffers() -> None:
    key, plaintext = os.urandom(32), os.urandom(30_000)
    ct = bytearray(P4K.ciphertext_size(len(plaintext)) + 10)  # larger is fine
    n = sa.encrypt_into(ct, plaintext, key, b"ad", P4K)
    assert n == P4K.ciphertext_size(len(plaintext))
    assert tink_decrypt(key, P4K, bytes(ct[:n]), b"ad") == plaintext
    back = bytearray(len(plaintext))
    assert sa.decrypt_into(back, memoryview(ct)[:n], key, b"ad", P4K) == len(plaintext)
    assert back == plaintext
    with pytest.raises(ValueError, match="needed"):
        sa.encrypt_into(bytearray(10), plaintext, key, b"", P4K)
    with pytest.raises(ValueError, match="needed"):
        sa.decrypt_into(bytearray(10), memoryview(ct)[:n], key, b"ad", P4K)
