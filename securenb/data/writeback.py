"""Start writing large outputs to disk while they are still being produced.

Without this, an fsync at the end (atomic_writer's) waits for the whole file
to reach the disk after the work is done; asking the kernel every few MiB to
start writeback overlaps the disk with the encryption, which is what makes
encrypting a file cost about as much as copying it. ``POSIX_FADV_DONTNEED``
starts asynchronous writeback of the range; pages still dirty or under
writeback stay cached.
"""

from __future__ import annotations

import os
from typing import BinaryIO

from securenb.data.streaming_aead import Buffer

WRITEBACK_EVERY = 8 << 20


class WriteBehind:
    """Wraps a file opened for writing; every ``every`` bytes, starts their writeback."""

    def __init__(self, file: BinaryIO, every: int = WRITEBACK_EVERY) -> None:
        self._file = file
        self._every = every
        self._written = 0
        self._started = 0
        self._fd = file.fileno() if hasattr(os, "posix_fadvise") else -1

    def write(self, data: Buffer) -> int:
        n = self._file.write(data)
        self._written += n
        if self._fd >= 0 and self._written - self._started >= self._every:
            self._file.flush()
            os.posix_fadvise(
                self._fd, self._started, self._written - self._started, os.POSIX_FADV_DONTNEED
            )
            self._started = self._written
        return n
