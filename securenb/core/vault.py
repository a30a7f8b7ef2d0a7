"""Keep the process that holds unlocked keys from giving them away (as ssh-agent does).

Two holes in a process that was handed a passphrase in its environment:

- ``/proc/<pid>/environ`` shows the environment block the process was started
  with, not ``os.environ``: removing the variable from ``os.environ`` leaves it
  there for any same-user process (a notebook cell) to read. We overwrite the
  variable's bytes in that block itself (the kernel reads it from the
  process's memory between ``env_start`` and ``env_end`` of ``/proc/self/stat``).
- A same-user process may read another's memory (``/proc/<pid>/mem``,
  ptrace). ``prctl(PR_SET_DUMPABLE, 0)`` makes the process non-dumpable: its
  ``/proc`` files then belong to root, and same-user processes without
  ``CAP_SYS_PTRACE`` can neither read them nor attach. Root (or a process
  with that capability) still can: only a different OS user is a boundary
  against root, hence the isolated kernelspecs for untrusted notebooks.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from collections.abc import Iterable
from pathlib import Path

PR_SET_DUMPABLE = 4
PR_GET_DUMPABLE = 3
_ENV_START, _ENV_END = 50, 51  # fields of /proc/<pid>/stat, numbered from 1 (proc(5))


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def make_undumpable() -> None:
    """``prctl(PR_SET_DUMPABLE, 0)``: no core dumps, no same-user ptrace or /proc reads."""
    if _libc().prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE, 0) failed")


def dumpable() -> bool:
    """Whether this process is dumpable (``PR_GET_DUMPABLE``)."""
    return bool(_libc().prctl(PR_GET_DUMPABLE, 0, 0, 0, 0))


def scrub_environment(names: Iterable[str]) -> int:
    """Remove ``names`` from ``os.environ`` and overwrite them in the initial environment block.

    Returns how many entries of the block were overwritten. Only Linux has the
    block's bounds in ``/proc/self/stat``; elsewhere only ``os.environ`` is cleared.
    """
    wanted = {name.encode() for name in names}
    for name in wanted:
        os.environ.pop(name.decode(), None)
    try:
        stat = Path("/proc/self/stat").read_text()
    except OSError:
        return 0
    fields = stat.rsplit(")", 1)[1].split()  # fields 3.. (the name may hold spaces)
    start, end = int(fields[_ENV_START - 3]), int(fields[_ENV_END - 3])
    block = ctypes.string_at(start, end - start)
    scrubbed, offset = 0, 0
    for entry in block.split(b"\0"):
        if entry.partition(b"=")[0] in wanted:
            ctypes.memset(start + offset, 0, len(entry))
            scrubbed += 1
        offset += len(entry) + 1
    return scrubbed
