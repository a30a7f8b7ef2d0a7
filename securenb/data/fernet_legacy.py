"""Read-only support for the legacy recipe: Fernet over a whole file.

The "SecureDataLoader" recipe writes ``Fernet(key).encrypt(file_bytes)``: a
base64url token of version (0x80), timestamp, IV, AES-128-CBC ciphertext and
an HMAC-SHA256 over all of it. We decode it as a stream (constant memory,
unlike the recipe's four copies of the file) so users can migrate. Its one MAC
covers the whole file, so plaintext is only ever handed to our encryptor
(``migrate``) or returned whole after the MAC verified (``read_fernet``): never
written to disk.
"""

from __future__ import annotations

import base64
import binascii
import io
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, hmac, padding
from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms, modes

from securenb.data.dataset import (
    DEFAULT_ALGORITHM,
    EncryptResult,
    encrypt_from,
)
from securenb.data.errors import DataFormatError, DecryptionError
from securenb.data.kek import KeyEncryptionKey, read_secret
from securenb.data.manifest import Schema
from securenb.data.streaming_aead import Progress
from securenb.errors import KeyError_, at

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

VERSION = 0x80
HEADER_SIZE = 1 + 8 + 16
MAC_SIZE = 32
BLOCK = 16
CHUNK_CHARS = 4 * (1 << 18)  # 1 MiB of base64 text per read
LEGACY_SUFFIXES = (".enc", ".encrypted", ".fernet", ".crypt")


def fernet_key(key: bytes | str) -> bytes:
    """The 32 raw bytes of a Fernet key: given as its base64url text, or a secret URI."""
    source, text = (key, read_secret(key)) if isinstance(key, str) else ("Fernet key", key)
    try:
        raw = base64.urlsafe_b64decode(text.strip())
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise KeyError_(at(source, "not a Fernet key (base64url of 32 bytes)"))
    return raw


class FernetReader(io.RawIOBase):
    """Streams the plaintext of a Fernet token; raises at the end unless the MAC verifies.

    Bytes returned before the end are not yet authenticated: hand them only to
    something that discards its output on error (our encryptor's temp file).
    """

    def __init__(self, source: io.BufferedIOBase, key: bytes, name: str) -> None:
        super().__init__()
        self.name = name
        self._src = source
        self._mac = hmac.HMAC(key[:16], hashes.SHA256())
        self._aes_key = key[16:]
        self._decryptor: CipherContext | None = None
        self._carry = b""
        self._pending = bytearray()
        self._out = bytearray()
        self._out_pos = 0
        self._finished = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        while self._out_pos == len(self._out) and not self._finished:
            self._out, self._out_pos = bytearray(), 0
            self._fill()
        n = min(len(view), len(self._out) - self._out_pos)
        view[:n] = self._out[self._out_pos : self._out_pos + n]
        self._out_pos += n
        return n

    def _fill(self) -> None:
        chunk = self._src.read(CHUNK_CHARS)
        if not chunk:
            self._finish()
            return
        text = self._carry + chunk.translate(None, b" \t\r\n")
        cut = len(text) - len(text) % 4
        self._carry = text[cut:]
        try:
            self._pending += base64.b64decode(text[:cut], altchars=b"-_", validate=True)
        except binascii.Error:
            raise DataFormatError(at(self.name, "not a Fernet token: invalid base64url")) from None
        decryptor = self._decryptor or self._start()
        keep = MAC_SIZE + BLOCK  # the MAC, and the last block that holds the padding
        if decryptor is not None and len(self._pending) > keep:
            n = (len(self._pending) - keep) // BLOCK * BLOCK
            body = bytes(self._pending[:n])
            del self._pending[:n]
            self._mac.update(body)
            self._out += decryptor.update(body)

    def _start(self) -> CipherContext | None:
        """Consume the header once enough of it arrived."""
        if len(self._pending) < HEADER_SIZE:
            return None
        header = bytes(self._pending[:HEADER_SIZE])
        if header[0] != VERSION:
            raise DataFormatError(at(self.name, f"not a Fernet token (version byte {header[0]})"))
        del self._pending[:HEADER_SIZE]
        self._mac.update(header)
        self._decryptor = Cipher(algorithms.AES(self._aes_key), modes.CBC(header[9:])).decryptor()
        return self._decryptor

    def _finish(self) -> None:
        self._finished = True
        body, tag = bytes(self._pending[:-MAC_SIZE]), bytes(self._pending[-MAC_SIZE:])
        if self._carry or self._decryptor is None or len(body) < BLOCK or len(body) % BLOCK:
            raise DecryptionError(at(self.name, "truncated or malformed Fernet token"))
        self._mac.update(body)
        try:
            self._mac.verify(tag)
        except InvalidSignature:
            raise DecryptionError(
                at(self.name, "Fernet MAC does not verify: wrong key, or the file was modified")
            ) from None
        last = self._decryptor.update(body) + self._decryptor.finalize()
        unpadder = padding.PKCS7(128).unpadder()
        try:
            self._out += unpadder.update(last) + unpadder.finalize()
        except ValueError:
            raise DecryptionError(at(self.name, "Fernet token has invalid padding")) from None
        self._pending.clear()


def _open_legacy(path: Path) -> io.BufferedReader:
    try:
        return open(path, "rb")
    except OSError as exc:
        raise DataFormatError(at(path, f"cannot read ({exc.strerror})")) from None


def read_fernet(path: Path | str, key: bytes | str) -> bytes:
    """The whole plaintext of a Fernet file, returned only once its MAC verified."""
    path = Path(path)
    raw_key = fernet_key(key)
    with _open_legacy(path) as fh:
        return FernetReader(fh, raw_key, str(path)).readall()


def plaintext_name(path: Path) -> str:
    """``data.csv.enc`` -> ``data.csv``: the name the legacy file was made from."""
    for suffix in LEGACY_SUFFIXES:
        if path.name.endswith(suffix) and len(path.name) > len(suffix):
            return path.name[: -len(suffix)]
    return path.name


def default_migration_output(src: Path) -> Path:
    """``data.csv.encrypted`` -> ``data.csv.enc``; ``data.csv.enc`` -> ``data.csv.securenb.enc``
    (never the legacy file itself: it stays until the user removes it)."""
    out = src.with_name(plaintext_name(src) + ".enc")
    return out if out != src else src.with_name(plaintext_name(src) + ".securenb.enc")


def migrate(
    src: Path | str,
    dst: Path | str | None = None,
    *,
    fernet: bytes | str,
    kek: KeyEncryptionKey | str,
    roles: tuple[str, ...] | list[str] = (),
    schema: Schema | None = None,
    source: str | None = None,
    algorithm: str = DEFAULT_ALGORITHM,
    progress: Progress | None = None,
) -> EncryptResult:
    """Re-encrypt a legacy Fernet file as a dataset without plaintext touching the disk.

    The new ciphertext is renamed into place only after the Fernet MAC verified;
    the legacy file is left as it is.
    """
    src = Path(src)
    name = plaintext_name(src)
    out = Path(dst) if dst is not None else default_migration_output(src)
    if out.resolve() == src.resolve():
        raise DataFormatError(at(src, "the migrated dataset would replace it; give another output"))
    raw_key = fernet_key(fernet)
    with _open_legacy(src) as fh:
        reader = FernetReader(fh, raw_key, str(src))
        return encrypt_from(
            reader, out, name=name, kek=kek, roles=roles, schema=schema,
            origin=source or f"migrated from Fernet file {src.name}", algorithm=algorithm,
            progress=progress,
        )
