"""Scan exactly the bytes whose digest is recorded.

A scan record names each file by its SHA-256. Scanning a file and hashing it again
afterwards reads it twice, and another process of the same user (a kernel) can swap
or rewrite the file in between: a SAFE verdict would be signed for bytes nobody
scanned. :func:`read_stably` gives the scan and the digest the same bytes:

- Fast path: a read lease (``F_SETLEASE``) on the open file. The kernel grants it
  only while nobody has the file open for writing, and anyone who then opens it for
  writing or truncates it waits until the lease is given back. The file is hashed and
  scanned through our descriptor; if the lease was broken meanwhile, this is
  forgotten and the slow path runs. A rename swaps the path, not our open file.
- Slow path (no lease: not our file, a writer has it open, a filesystem without
  leases): the file is copied once into an unnamed temporary file (``O_TMPFILE``: no
  path leads to it), hashed while it is copied, and scanned from that copy. The
  securenb server is non-dumpable, so its open files are out of reach through
  ``/proc/<pid>/fd``; the CLI makes itself so before it records.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import signal
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO, TypeVar

_CHUNK = 1 << 20
T = TypeVar("T")


def read_stably(fh: BinaryIO, near: Path, scan: Callable[[BinaryIO], T]) -> tuple[T, str, int]:
    """``scan(f)`` of the bytes of ``fh``, with their SHA-256 hex digest and size."""
    with _read_lease(fh) as leased:
        if leased:
            digest, size = _sha256(fh)
            fh.seek(0)
            result = scan(fh)
            if _still_leased(fh):
                return result, digest, size
    fh.seek(0)
    with private_copy(fh, near) as (copy, digest, size):
        return scan(copy), digest, size


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


@contextmanager
def _read_lease(fh: BinaryIO) -> Iterator[bool]:
    """Hold a read lease on ``fh`` (True), or say none could be had (False)."""
    fd = fh.fileno()
    try:
        # a lease break signals the holder, SIGIO by default, whose default action ends
        # the process; SIGURG's is to ignore it (we look at the lease instead)
        fcntl.fcntl(fd, fcntl.F_SETSIG, signal.SIGURG)
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_RDLCK)
    except OSError:  # open for writing somewhere, not our file, or no leases here
        yield False
        return
    try:
        yield True
    finally:
        with suppress(OSError):
            fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)


def _still_leased(fh: BinaryIO) -> bool:
    """Whether the read lease is whole: a break in progress reads as F_UNLCK."""
    return bool(fcntl.fcntl(fh.fileno(), fcntl.F_GETLEASE) == fcntl.F_RDLCK)


def _sha256(fh: BinaryIO) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    fd = fh.fileno()
    while chunk := os.pread(fd, _CHUNK, size):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def _unnamed_file(folder: Path) -> BinaryIO:
    """An unnamed temporary file in ``folder``, or in the temporary folder if that is
    read-only."""
    try:
        return tempfile.TemporaryFile(dir=folder)  # the caller closes it
    except OSError:
        return tempfile.TemporaryFile()
