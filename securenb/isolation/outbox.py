"""What a run wrote, re-created on the host: the only way files leave a sandbox.

The sandbox writes into its outbox (a folder of the runtime mounted where the
output folder is). After the run, the parent walks the outbox without
following anything (each folder opened relative to its parent with
``O_NOFOLLOW``) and, for each regular file, writes a new file in the real
output folder from the bytes it reads, hashing them as they are copied. So an
output is, by construction, a regular file owned by the caller, with no set-id
bit, whose digest is that of the bytes the host wrote, which no process of
the sandbox can touch afterwards. Links, devices, FIFOs and sockets are never
copied; names with control characters are refused; the walk is bounded in
depth, entries, bytes and time. Everything is written under temporary names
and renamed into place only when the whole outbox passed, so a failed run
leaves no half-copied output. The outbox is emptied afterwards.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from securenb.isolation.errors import IsolationError

_CHUNK = 1 << 20
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
def _unfinished(name: str) -> bool:
    """Names securenb.sandbox writes under while saving (a checkpoint folder, a variable)."""
    return name.startswith(".tmp-") or (name.startswith(".") and name.endswith(".partial"))


@dataclass(frozen=True)
class Caps:
    """Bounds of one run's outputs; past any of them the run fails."""

    max_bytes: int = 16 << 30
    max_entries: int = 10_000
    max_depth: int = 32
    max_seconds: float = 600.0


@dataclass(frozen=True)
class Copied:
    """One output as re-created on the host, with the digest of the bytes written."""

    path: Path  # final path in the output folder
    sha256: str
    size: int


@dataclass
class Collected:
    files: list[Copied] = field(default_factory=list)
    refused: list[tuple[Path, str]] = field(default_factory=list)  # (path, why): not copied
    error: str = ""  # set when a cap was passed: nothing was published


class OutboxError(IsolationError):
    """The outbox passed a cap; the run fails with this reason."""


def printable(name: str) -> str:
    """A name as it can be shown on one status line (escapes for anything unprintable)."""
    return name if name.isprintable() else ascii(name)[1:-1]


def _name_problem(name: str) -> str:
    if not name.isprintable() or name != name.strip("\u200b\ufeff"):
        return "its name has control or invisible characters"
    if len(name.encode()) > 255:
        return "its name is too long"
    return ""


class _Walk:
    def __init__(self, dest: Path, caps: Caps, run: str, redact: Callable[[str], str]) -> None:
        self.dest, self.caps, self.tag = dest, caps, f".tmp-securenb-{run}-"
        self.redact = redact
        self.deadline = time.monotonic() + caps.max_seconds
        self.entries = self.bytes = 0
        self.result = Collected()
        self.pending: list[tuple[int, str, str]] = []  # (dest dir fd, temp name, final name)
        self.made: list[tuple[int, str]] = []  # folders created in dest: removed on failure
        self.dir_fds: list[int] = []

    def check(self, more_bytes: int = 0) -> None:
        self.bytes += more_bytes
        if self.bytes > self.caps.max_bytes:
            raise OutboxError(f"the run wrote more than {self.caps.max_bytes} bytes of outputs")
        if time.monotonic() > self.deadline:
            raise OutboxError(f"vetting the outputs took longer than {self.caps.max_seconds:g} s")

    def folder(self, src_fd: int, dst_fd: int, rel: Path, depth: int) -> None:
        if depth > self.caps.max_depth:
            raise OutboxError(f"{printable(self.redact(str(rel)))}: outputs nested deeper than "
                              f"{self.caps.max_depth} folders")
        for name in sorted(os.listdir(src_fd)):
            self.entries += 1
            if self.entries > self.caps.max_entries:
                raise OutboxError(f"the run wrote more than {self.caps.max_entries} files "
                                  "and folders")
            self.check()
            self.entry(src_fd, dst_fd, rel / name, name, depth)

    def entry(self, src_fd: int, dst_fd: int, rel: Path, name: str, depth: int) -> None:
        shown = self.dest / printable(self.redact(str(rel)))
        st = os.stat(name, dir_fd=src_fd, follow_symlinks=False)
        problem = _name_problem(name)
        if not problem and self.redact(str(rel)) != str(rel):
            problem = "its name holds a secret's value (names go into records)"
        if not problem and _unfinished(name):
            problem = "an unfinished write (the sandbox stopped while saving it)"
        if not problem and not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
            problem = f"a {_kind(st.st_mode)}: not a plain file (removed)"
        if problem:
            self.result.refused.append((shown, problem))
            return
        if stat.S_ISDIR(st.st_mode):
            child_src = os.open(name, _DIR_FLAGS, dir_fd=src_fd)
            self.dir_fds.append(child_src)
            child_dst = _dest_folder(dst_fd, name, self.made)
            self.dir_fds.append(child_dst)
            self.folder(child_src, child_dst, rel, depth + 1)
            return
        self.copy(src_fd, dst_fd, rel, name)

    def copy(self, src_fd: int, dst_fd: int, rel: Path, name: str) -> None:
        try:
            fd = os.open(name, _READ_FLAGS, dir_fd=src_fd)
        except OSError as exc:  # replaced under us by a link or a FIFO
            self.result.refused.append((self.dest / rel, f"not a plain file ({exc.strerror})"))
            return
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                self.result.refused.append((self.dest / rel, "not a plain file"))
                return
            self.check(st.st_size)  # refuse before reading a file that cannot fit
            temp = f"{self.tag}{uuid.uuid4().hex[:8]}"
            out = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                          | os.O_CLOEXEC, 0o666, dir_fd=dst_fd)
            self.pending.append((dst_fd, temp, name))
            digest, size = hashlib.sha256(), 0
            try:
                while chunk := os.read(fd, _CHUNK):
                    size += len(chunk)
                    if size > st.st_size:  # still growing: count what is copied
                        self.check(len(chunk))
                    digest.update(chunk)
                    os.write(out, chunk)
            finally:
                os.close(out)
        finally:
            os.close(fd)
        self.result.files.append(Copied(self.dest / rel, digest.hexdigest(), size))

    def publish(self) -> None:
        for dst_fd, temp, name in self.pending:
            with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                st = os.stat(name, dir_fd=dst_fd, follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):  # a folder where a file now goes
                    _remove_tree(dst_fd, name)
            os.rename(temp, name, src_dir_fd=dst_fd, dst_dir_fd=dst_fd)
        self.pending.clear()

    def discard(self) -> None:
        for dst_fd, temp, _ in self.pending:
            with contextlib.suppress(OSError):
                os.unlink(temp, dir_fd=dst_fd)
        self.pending.clear()
        for parent_fd, name in reversed(self.made):  # innermost first; only if left empty
            with contextlib.suppress(OSError):
                os.rmdir(name, dir_fd=parent_fd)


def _kind(mode: int) -> str:
    for test, kind in ((stat.S_ISLNK, "symbolic link"), (stat.S_ISFIFO, "FIFO"),
                       (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "character device"),
                       (stat.S_ISBLK, "block device")):
        if test(mode):
            return kind
    return "special file"


def _dest_folder(parent_fd: int, name: str, made: list[tuple[int, str]]) -> int:
    """Open (or make) ``name`` under ``parent_fd`` as a real folder; a link or a file
    there (planted by an older version, or by hand) is replaced, never followed."""
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    except FileNotFoundError:
        pass
    except OSError:  # ELOOP / ENOTDIR: not a folder
        os.unlink(name, dir_fd=parent_fd)
    os.mkdir(name, 0o777, dir_fd=parent_fd)
    made.append((parent_fd, name))
    return os.open(name, _DIR_FLAGS, dir_fd=parent_fd)


def _remove_tree(parent_fd: int, name: str) -> None:
    fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    try:
        for child in os.listdir(fd):
            st = os.stat(child, dir_fd=fd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                _remove_tree(fd, child)
            else:
                os.unlink(child, dir_fd=fd)
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=parent_fd)


def collect(outbox: Path, dest: Path, caps: Caps = Caps(),
            redact: Callable[[str], str] = str) -> Collected:
    """Copy what the run left in ``outbox`` into ``dest`` (see the module docstring), then
    empty the outbox. A passed cap publishes nothing and sets ``error``. ``redact`` hides
    the run's secrets: a name it changes holds one, and is refused and shown redacted."""
    walk = _Walk(dest, caps, uuid.uuid4().hex[:8], redact)
    try:
        src = os.open(outbox, _DIR_FLAGS)
        walk.dir_fds.append(src)
        dst = os.open(dest, _DIR_FLAGS)
        walk.dir_fds.append(dst)
        walk.folder(src, dst, Path(), 0)
        walk.publish()
    except (OutboxError, OSError, RecursionError) as exc:
        walk.discard()
        walk.result.error = str(exc) if isinstance(exc, OutboxError) else (
            f"the outputs could not be copied ({exc})")
        walk.result.files.clear()
    finally:
        for fd in walk.dir_fds:
            os.close(fd)
        empty(outbox)
    return walk.result


def empty(outbox: Path) -> None:
    """Remove everything in the outbox (the folder itself stays: it is mounted). ``rm``
    copes with trees of any depth, which a recursive walk in Python would not."""
    try:
        names = os.listdir(outbox)
    except OSError:
        return
    folders = []
    for name in names:
        with contextlib.suppress(OSError):
            if stat.S_ISDIR(os.lstat(outbox / name).st_mode):
                folders.append(str(outbox / name))
            else:
                os.unlink(outbox / name)
    if folders:
        subprocess.run(["rm", "-rf", "--one-file-system", "--", *folders],
                       capture_output=True, check=False)
