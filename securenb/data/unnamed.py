"""Plaintext written where no name points to it until it is complete (killed decrypt).

``atomic_writer`` writes to a named temporary file: a decrypt killed by SIGKILL
(no ``except``, no ``finally``) leaves that file, holding plaintext, in the
destination folder. Here the output is an ``O_TMPFILE`` file: it has no name
while it is written, so a killed process leaves nothing; only when every
segment authenticated is it linked (``linkat`` through ``/proc/self/fd``) under
a temporary name and renamed over the destination. Where the file system
lacks ``O_TMPFILE`` the named temporary file of ``atomic_writer`` is used.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from securenb.core.fsutil import atomic_writer, replace_durably


@contextlib.contextmanager
def unnamed_writer(path: Path, mode: int = 0o600) -> Iterator[BinaryIO]:
    """Yield a file that becomes ``path`` only if the block succeeds; unnamed until then."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path.parent, os.O_TMPFILE | os.O_WRONLY | os.O_CLOEXEC, mode)
    except (AttributeError, OSError):  # no O_TMPFILE here: a named temporary file
        with atomic_writer(path, mode) as fh:
            yield fh
        return
    os.fchmod(fd, mode)  # explicit, not from the umask
    with os.fdopen(fd, "wb") as fh:
        yield fh  # on an exception the file is closed and, having no name, gone
        fh.flush()
        os.fsync(fh.fileno())
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
        folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:  # a dir_fd makes CPython call linkat(AT_SYMLINK_FOLLOW), not link()
            os.link(f"/proc/self/fd/{fh.fileno()}", tmp.name, dst_dir_fd=folder,
                    follow_symlinks=True)
        finally:
            os.close(folder)
    replace_durably(tmp, path)
