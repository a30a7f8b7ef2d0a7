"""Where signatures go by default, and whether one lies inside a model folder."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from securenb.errors import SecurenbError, at

MAX_SIGNATURE_BYTES = 64 << 20


def default_signature_path(artifact: Path) -> Path:
    """The sidecar ``<artifact>.sig`` beside a file or a folder."""
    artifact = Path(os.path.abspath(artifact))
    return artifact.with_name(artifact.name + ".sig")


def relative_inside(path: Path, folder: Path) -> str | None:
    """``path`` relative to ``folder`` (POSIX) if it is inside it, else None."""
    try:
        return Path(os.path.abspath(path)).relative_to(os.path.abspath(folder)).as_posix()
    except ValueError:
        return None


def open_regular(path: Path, what: str) -> int:
    """A descriptor of ``path`` if it is a regular file, checked on the descriptor itself.

    ``O_NOFOLLOW`` refuses a link put in its place, ``O_NONBLOCK`` a FIFO that
    would block the open, and ``fstat`` of the descriptor (not of the path)
    says what will actually be read: nothing can be swapped in between.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if os.path.islink(path):
            raise SecurenbError(at(path, f"is a symbolic link; {what} may not be links")) from None
        raise SecurenbError(at(path, f"cannot read ({exc.strerror})")) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise SecurenbError(at(path, f"not a regular file; {what} must be regular files"))
    return fd


def read_signature(path: Path) -> bytes:
    """The signature file's bytes, read once: every check then uses these bytes."""
    fd = open_regular(path, "signatures")
    with os.fdopen(fd, "rb") as fh:
        data = fh.read(MAX_SIGNATURE_BYTES + 1)
    if len(data) > MAX_SIGNATURE_BYTES:
        raise SecurenbError(at(path, f"larger than {MAX_SIGNATURE_BYTES} bytes: not a signature"))
    return data
