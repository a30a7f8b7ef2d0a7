"""Run a command without the capabilities that read another process's memory.

``python -I drop_caps.py -- CMD...`` (standard library only: it runs before the
kernel, by path). A root process keeps every capability across ``execve`` that
its bounding set (and inheritable set) holds, so this drops them from both,
clears the ambient set and sets ``PR_SET_NO_NEW_PRIVS`` (no set-id or file
capability gives them back), then executes CMD. Dropped: ``CAP_SYS_PTRACE``
(``/proc/<pid>/mem``, ``ptrace``, ``process_vm_readv`` of the non-dumpable
server), ``CAP_SYS_RAWIO`` (``/dev/mem``, ``/proc/kcore``), ``CAP_SYS_MODULE``
(a kernel module reads anything), ``CAP_PERFMON`` and ``CAP_BPF`` (tracing
programs that read user memory). ``CAP_SYS_ADMIN`` stays: root podman needs it
(docs/server.md says what that leaves open).
"""

from __future__ import annotations

import ctypes
import os
import sys

DROPPED = {"CAP_SYS_MODULE": 16, "CAP_SYS_RAWIO": 17, "CAP_SYS_PTRACE": 19,
           "CAP_PERFMON": 38, "CAP_BPF": 39}
_PR_CAPBSET_DROP, _PR_SET_NO_NEW_PRIVS = 24, 38
_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL = 47, 4
_CAP_VERSION_3 = 0x20080522


class _Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _Data(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"securenb drop_caps: {what}: {os.strerror(err)}")


def drop() -> None:
    """Drop ``DROPPED`` from this process's bounding and inheritable sets (for good)."""
    libc = ctypes.CDLL(None, use_errno=True)
    ulong = ctypes.c_ulong  # prctl wants every argument full width: unused ones must be 0
    libc.prctl.argtypes = [ctypes.c_int, ulong, ulong, ulong, ulong]
    with open("/proc/sys/kernel/cap_last_cap") as f:
        last = int(f.read())
    caps = [c for c in DROPPED.values() if c <= last]  # older kernels lack BPF, PERFMON
    for cap in caps:
        _check(libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0), f"drop cap {cap}")
    header, data = _Header(_CAP_VERSION_3, 0), (_Data * 2)()
    _check(libc.capget(ctypes.byref(header), data), "capget")
    for cap in caps:
        data[cap // 32].inheritable &= ~(1 << (cap % 32))
    _check(libc.capset(ctypes.byref(header), data), "capset")
    _check(libc.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), "clear ambient")
    _check(libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")


def main(argv: list[str]) -> None:
    if argv[:1] != ["--"] or len(argv) < 2:
        raise SystemExit("usage: drop_caps.py -- COMMAND [ARGS...]")
    drop()
    os.execvp(argv[1], argv[1:])  # noqa: S606 - the kernel command jupyter_client built


if __name__ == "__main__":
    main(sys.argv[1:])
