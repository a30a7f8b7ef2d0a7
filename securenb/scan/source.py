"""Byte ranges to scan without copying them: a file, a slice of it, or a spilled temp file.

Archives hand their stored members to the next scanner as windows on the same file, so
scanning a 1 GB checkpoint reads its directory and its pickle and nothing else. Inflated
data (gzip, deflated members) goes to a temporary file with a hard size cap.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from typing import IO, BinaryIO

CHUNK = 1 << 20


class LimitExceeded(Exception):
    """A decompression or size limit was reached; the caller reports UNKNOWN."""


class Source:
    """A read-only window ``[start, start + size)`` of an open binary file."""

    __slots__ = ("_fd", "_fh", "size", "start")

    def __init__(self, fh: IO[bytes], start: int = 0, size: int | None = None) -> None:
        self._fh = fh
        try:
            self._fd: int | None = fh.fileno()
        except (OSError, ValueError, AttributeError):
            self._fd = None
        if size is None:
            fh.seek(0, os.SEEK_END)
            size = fh.tell() - start
        self.start = start
        self.size = max(0, size)

    @property
    def fd(self) -> int | None:
        """The OS file descriptor, for child processes that read the window themselves."""
        return self._fd

    def read_at(self, offset: int, n: int) -> bytes:
        """Up to ``n`` bytes at ``offset`` (fewer only at the end of the window)."""
        if offset < 0 or n <= 0 or offset >= self.size:
            return b""
        n = min(n, self.size - offset)
        if self._fd is not None:
            return os.pread(self._fd, n, self.start + offset)
        self._fh.seek(self.start + offset)
        return self._fh.read(n)

    def window(self, offset: int, size: int) -> Source:
        offset = max(0, min(offset, self.size))
        size = max(0, min(size, self.size - offset))
        return Source(self._fh, self.start + offset, size)

    def head(self, n: int = 512) -> bytes:
        return self.read_at(0, n)


class Cursor:
    """Sequential buffered reading of a :class:`Source`, with cheap skips (seeks)."""

    __slots__ = ("_base", "_buf", "_pos", "src")

    def __init__(self, src: Source, offset: int = 0) -> None:
        self.src = src
        self._base = offset
        self._buf = b""
        self._pos = 0

    def tell(self) -> int:
        return self._base + self._pos

    def seek(self, offset: int) -> None:
        if self._base <= offset <= self._base + len(self._buf):
            self._pos = offset - self._base
        else:
            self._base, self._buf, self._pos = offset, b"", 0

    def remaining(self) -> int:
        return self.src.size - self.tell()

    def _fill(self, n: int) -> None:
        here = self.tell()
        self._buf = self._buf[self._pos :] + self.src.read_at(
            here + len(self._buf) - self._pos, max(n, CHUNK)
        )
        self._base, self._pos = here, 0

    def take(self, n: int) -> bytes:
        """Exactly ``n`` bytes, or fewer at the end of the source (caller checks)."""
        end = self._pos + n
        if end > len(self._buf):
            self._fill(n)
            end = n
        out = self._buf[self._pos : end]
        self._pos = min(end, len(self._buf))
        return out

    def byte(self) -> int:
        """The next byte, or -1 at the end."""
        if self._pos >= len(self._buf):
            self._fill(1)
            if not self._buf:
                return -1
        b = self._buf[self._pos]
        self._pos += 1
        return b

    def line(self, limit: int) -> bytes | None:
        """Bytes up to and including ``\\n``; None if no newline within ``limit`` bytes."""
        while True:
            i = self._buf.find(b"\n", self._pos, self._pos + limit)
            if i >= 0:
                out = self._buf[self._pos : i + 1]
                self._pos = i + 1
                return out
            have = len(self._buf) - self._pos
            if have >= limit or self.tell() + have >= self.src.size:
                return None
            self._fill(have + CHUNK)

    def skip(self, n: int) -> None:
        self.seek(self.tell() + n)


def spill(
    chunks: Callable[[], bytes],
    limit: int,
    keep: list[BinaryIO],
) -> Source:
    """Write the output of ``chunks()`` (called until it returns b"") to a temp file.

    Raises :class:`LimitExceeded` past ``limit`` bytes. The temp file is appended to
    ``keep`` so the caller closes it when the scan of that file ends.
    """
    tmp = tempfile.TemporaryFile()  # noqa: SIM115 - closed through ``keep``
    keep.append(tmp)
    total = 0
    while True:
        block = chunks()
        if not block:
            break
        total += len(block)
        if total > limit:
            raise LimitExceeded(f"inflates to more than {limit} bytes")
        tmp.write(block)
    tmp.flush()
    return Source(tmp, 0, total)
