"""Scan exactly the bytes whose digest is recorded.

A scan record names each file by its SHA-256. Scanning a file and hashing it again
afterwards reads it twice, and another process of the same user (a kernel) can swap
the file in between: a SAFE verdict would be signed for bytes nobody scanned. So a
file to be recorded is copied once into an unnamed temporary file (``O_TMPFILE``:
no path leads to it), hashed while it is copied, and scanned from that copy. The
securenb server is non-dumpable, so its open files are out of reach through
``/proc/<pid>/fd`` too; the CLI makes itself so before it records.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

_CHUNK = 1 << 20


@contextmanager
def private_copy(fh: BinaryIO, near: Path) -> Iterator[tuple[BinaryIO, str, int]]:
    """An unnamed copy of what ``fh`` reads, with its SHA-256 hex digest and size.

    The copy is made in ``near``'s folder when it can be (the same filesystem has room
    for a model), else in the temporary folder."""
    with _unnamed_file(near.parent) as copy:
        digest = hashlib.sha256()
        size = 0
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
            copy.write(chunk)
            size += len(chunk)
        copy.flush()
        copy.seek(0)
        yield copy, digest.hexdigest(), size


def _unnamed_file(folder: Path) -> BinaryIO:
    """An unnamed temporary file in ``folder``, or in the temporary folder if that is
    read-only."""
    try:
        return tempfile.TemporaryFile(dir=folder)  # the caller closes it
    except OSError:
        return tempfile.TemporaryFile()
