"""A seekable, read-only file object over an encrypted file.

Reading a range decrypts only the segments that hold it, so Parquet footers,
NumPy rows and byte ranges of a large file cost what they read. A segment is
authenticated before any of its bytes are returned.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import TYPE_CHECKING

from securenb.data.errors import DataFormatError, DecryptionError
from securenb.data.streaming_aead import TAG_SIZE, SegmentCipher, StreamingParams
from securenb.errors import at

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

_HASH_CHUNK = 1 << 20


class EncryptedReader(io.RawIOBase):
    """Plaintext view of one ciphertext file; keeps one decrypted segment cached.

    With ``expected_sha256``, reading the file in order from the start also
    hashes the ciphertext and raises at the end if it is not the recorded one
    (random access skips that check; ``verify_digest`` does it up front). Not
    safe to share between threads: open one reader per thread or process.
    """

    def __init__(
        self,
        path: Path,
        key: bytes,
        associated_data: bytes,
        params: StreamingParams,
        *,
        expected_size: int | None = None,
        expected_sha256: str | None = None,
    ) -> None:
        super().__init__()
        self.name = str(path)
        self._fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        try:
            size = os.fstat(self._fd).st_size
            if expected_size is not None and size != expected_size:
                raise DecryptionError(
                    at(path, f"is {size} bytes but its manifest says {expected_size}: "
                             "truncated, extended or replaced")
                )
            self._layout = params.layout(size, self.name)
            header = os.pread(self._fd, params.header_size, 0)
            self._cipher = SegmentCipher(params, key, header, associated_data, self.name)
        except BaseException:
            os.close(self._fd)
            raise
        self._params = params
        self._ciphertext_size = size
        self._expected = expected_sha256
        self._digest_checked = False
        self._hash: hashlib._Hash | None = None
        self._hashed = 0
        self._pos = 0
        self._cached = -1
        self._plain = bytearray(params.plaintext_segment_size)
        self._sealed = bytearray(params.segment_size)

    @property
    def digest_checked(self) -> bool:
        """True once the whole ciphertext was hashed and matched the manifest."""
        return self._digest_checked

    @property
    def size(self) -> int:
        """Plaintext size in bytes."""
        return self._layout.plaintext_size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        self._check_open()
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._check_open()
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}.get(whence)
        if base is None:
            raise ValueError(f"invalid whence {whence}")
        if base + offset < 0:
            raise ValueError(f"negative seek position {base + offset}")
        self._pos = base + offset
        return self._pos

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError(f"{self.name}: I/O operation on a closed file")

    def readinto(self, buffer: WriteableBuffer) -> int:
        self._check_open()
        out = memoryview(buffer).cast("B")
        want = max(0, min(len(out), self.size - self._pos))
        done = 0
        while done < want:
            index, offset = self._params.locate(self._pos)
            length = self._layout.plaintext_length(index)
            n = min(length - offset, want - done)
            if offset == 0 and n == length:  # a whole segment: straight into the caller's buffer
                self._decrypt(index, out[done : done + n])
            else:
                if index != self._cached:
                    self._cached = -1
                    self._decrypt(index, memoryview(self._plain)[:length])
                    self._cached = index
                out[done : done + n] = self._plain[offset : offset + n]
            done += n
            self._pos += n
        return done

    def readall(self) -> bytes:
        buffer = bytearray(max(0, self.size - self._pos))
        return bytes(buffer[: self.readinto(buffer)])

    def _decrypt(self, index: int, out: memoryview) -> None:
        start = self._params.ciphertext_offset(index)
        sealed = memoryview(self._sealed)[: len(out) + TAG_SIZE]
        got = os.preadv(self._fd, [sealed], start)
        if got != len(sealed):
            raise DecryptionError(at(self.name, f"segment {index} is short: the file changed"))
        self._cipher.decrypt_into(index, self._layout.is_last(index), sealed, out)
        self._hash_in_order(index, sealed)

    def _hash_in_order(self, index: int, sealed: memoryview) -> None:
        if self._expected is None or self._digest_checked:
            return
        if index == 0:  # a read from the start (again): hash from the header on
            self._hash, self._hashed = hashlib.sha256(self._cipher.header), 0
        if self._hash is None or index != self._hashed:
            if index > self._hashed:
                self._hash = None  # not read in order: the digest cannot be checked on the way
            return
        self._hash.update(sealed)
        self._hashed += 1
        if self._layout.is_last(index):
            self._check_digest(self._hash.hexdigest())

    def _check_digest(self, actual: str) -> None:
        if actual != self._expected:
            raise DecryptionError(
                at(self.name, f"ciphertext digest sha256:{actual[:16]}... is not the manifest's "
                              f"sha256:{str(self._expected)[:16]}...: the file was replaced")
            )
        self._digest_checked = True

    def verify_digest(self) -> None:
        """Hash the whole ciphertext now (one sequential read) against the manifest."""
        if self._expected is None:
            raise DataFormatError(at(self.name, "no recorded digest to check it against"))
        digest = hashlib.sha256()
        buffer = bytearray(_HASH_CHUNK)
        offset = 0
        while offset < self._ciphertext_size:
            got = os.preadv(self._fd, [buffer], offset)
            if not got:
                break
            digest.update(memoryview(buffer)[:got])
            offset += got
        self._check_digest(digest.hexdigest())

    def close(self) -> None:
        if not self.closed:
            os.close(self._fd)
        super().close()
