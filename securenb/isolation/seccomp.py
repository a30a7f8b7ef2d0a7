"""A seccomp-BPF filter for the bwrap sandbox, generated here (no libseccomp needed).

bwrap applies no syscall filter of its own. This one denies what untrusted
training code has no use for and what most kernel privilege escalations start
from: new namespaces (the way to regain capabilities), mounts, keyrings,
ptrace, BPF, perf, userfaultfd, io_uring, module and clock changes, TTY input
injection, exotic socket families and personality flags, 32-bit and x32 entry
points. Everything else is allowed, so ordinary Python, NumPy and torch code
runs unchanged. The program is the raw ``struct sock_filter`` array that
``bwrap --seccomp FD`` loads.
"""

from __future__ import annotations

import errno
import platform
import struct
from dataclasses import dataclass

from securenb.isolation.errors import BackendUnavailableError

# BPF opcodes (linux/filter.h)
_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JGE_K = 0x35
_JSET_K = 0x45
_RET_K = 0x06

RET_ALLOW = 0x7FFF0000
RET_KILL_PROCESS = 0x80000000
_RET_ERRNO = 0x00050000

# offsets in struct seccomp_data (little-endian targets only)
_NR = 0
_ARCH = 4


def _arg_low(index: int) -> int:
    return 16 + 8 * index


AF_UNIX, AF_INET, AF_INET6, AF_NETLINK = 1, 2, 10, 16
TIOCSTI, TIOCLINUX = 0x5412, 0x541C
# CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET
CLONE_NAMESPACES = 0x7E020000
# personality(): query, PER_LINUX, UNAME26, ADDR_NO_RANDOMIZE, and both (as Docker allows)
ALLOWED_PERSONALITIES = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)

DENIED = (
    "unshare", "setns", "mount", "umount2", "pivot_root", "chroot", "mount_setattr", "open_tree",
    "move_mount", "fsopen", "fsconfig", "fsmount", "fspick", "swapon", "swapoff", "reboot",
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "syslog",
    "acct", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "quotactl",
    "quotactl_fd", "keyctl", "add_key", "request_key", "ptrace", "process_vm_readv",
    "process_vm_writev", "perf_event_open", "bpf", "userfaultfd", "open_by_handle_at",
    "name_to_handle_at", "fanotify_init", "lookup_dcookie", "vhangup", "uselib", "modify_ldt",
    "iopl", "ioperm", "io_uring_setup", "io_uring_enter", "io_uring_register", "pidfd_getfd",
    "kcmp", "sethostname", "setdomainname", "nfsservctl",
)


@dataclass(frozen=True)
class _Arch:
    audit_arch: int
    x32_bit: bool
    numbers: dict[str, int]


_ARCHES = {
    "x86_64": _Arch(0xC000003E, True, {
        "unshare": 272, "setns": 308, "mount": 165, "umount2": 166, "pivot_root": 155,
        "chroot": 161, "swapon": 167, "swapoff": 168, "reboot": 169, "kexec_load": 246,
        "kexec_file_load": 320, "init_module": 175, "finit_module": 313, "delete_module": 176,
        "syslog": 103, "acct": 163, "settimeofday": 164, "clock_settime": 227,
        "clock_adjtime": 305, "adjtimex": 159, "quotactl": 179, "quotactl_fd": 443,
        "keyctl": 250, "add_key": 248, "request_key": 249, "ptrace": 101,
        "process_vm_readv": 310, "process_vm_writev": 311, "perf_event_open": 298, "bpf": 321,
        "userfaultfd": 323, "open_by_handle_at": 304, "name_to_handle_at": 303,
        "fanotify_init": 300, "lookup_dcookie": 212, "vhangup": 153, "uselib": 134,
        "modify_ldt": 154, "iopl": 172, "ioperm": 173, "io_uring_setup": 425,
        "io_uring_enter": 426, "io_uring_register": 427, "mount_setattr": 442, "open_tree": 428,
        "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433,
        "pidfd_getfd": 438, "kcmp": 312, "sethostname": 170, "setdomainname": 171,
        "nfsservctl": 180, "personality": 135, "clone": 56, "clone3": 435, "socket": 41,
        "ioctl": 16,
    }),
    "aarch64": _Arch(0xC00000B7, False, {
        "unshare": 97, "setns": 268, "mount": 40, "umount2": 39, "pivot_root": 41, "chroot": 51,
        "swapon": 224, "swapoff": 225, "reboot": 142, "kexec_load": 104, "kexec_file_load": 294,
        "init_module": 105, "finit_module": 273, "delete_module": 106, "syslog": 116,
        "acct": 89, "settimeofday": 170, "clock_settime": 112, "clock_adjtime": 266,
        "adjtimex": 171, "quotactl": 60, "quotactl_fd": 443, "keyctl": 219, "add_key": 217,
        "request_key": 218, "ptrace": 117, "process_vm_readv": 270, "process_vm_writev": 271,
        "perf_event_open": 241, "bpf": 280, "userfaultfd": 282, "open_by_handle_at": 265,
        "name_to_handle_at": 264, "fanotify_init": 262, "lookup_dcookie": 18, "vhangup": 58,
        "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
        "mount_setattr": 442, "open_tree": 428, "move_mount": 429, "fsopen": 430,
        "fsconfig": 431, "fsmount": 432, "fspick": 433, "pidfd_getfd": 438, "kcmp": 272,
        "sethostname": 161, "setdomainname": 162, "nfsservctl": 42, "personality": 92,
        "clone": 220, "clone3": 435, "socket": 198, "ioctl": 29,
    }),
}


def errno_ret(code: int) -> int:
    return _RET_ERRNO | code


class _Program:
    """Tiny assembler: forward jumps to labels, resolved to 8-bit offsets."""

    def __init__(self) -> None:
        self.code: list[tuple[int, int | str, int | str, int]] = []
        self.labels: dict[str, int] = {}

    def load(self, offset: int) -> None:
        self.code.append((_LD_W_ABS, 0, 0, offset))

    def jump(self, op: int, k: int, true: int | str = 0, false: int | str = 0) -> None:
        self.code.append((op, true, false, k))

    def ret(self, value: int) -> None:
        self.code.append((_RET_K, 0, 0, value))

    def label(self, name: str) -> None:
        self.labels[name] = len(self.code)

    def assemble(self) -> bytes:
        out = bytearray()
        for index, (op, jt, jf, k) in enumerate(self.code):
            out += struct.pack("<HBBI", op, self._offset(index, jt), self._offset(index, jf), k)
        return bytes(out)

    def _offset(self, index: int, target: int | str) -> int:
        if isinstance(target, int):
            return target
        offset = self.labels[target] - index - 1
        if not 0 <= offset <= 255:
            raise ValueError(f"seccomp jump to {target} out of range ({offset})")
        return offset


def machine() -> str:
    return platform.machine().lower()


def supported() -> bool:
    return machine() in _ARCHES


def build_filter(arch: str | None = None) -> bytes:
    """The BPF program for ``arch`` (default: this machine)."""
    name = arch or machine()
    spec = _ARCHES.get(name)
    if spec is None:
        raise BackendUnavailableError(
            "bwrap", f"no seccomp filter for architecture {name}",
            f"supported: {', '.join(sorted(_ARCHES))}",
        )
    nr = spec.numbers
    p = _Program()
    p.load(_ARCH)
    p.jump(_JEQ_K, spec.audit_arch, 0, "kill")
    p.load(_NR)
    if spec.x32_bit:
        p.jump(_JGE_K, 0x40000000, "kill", 0)
    for name_ in DENIED:
        if name_ in nr:  # some exist only on some architectures (modify_ldt, iopl ...)
            p.jump(_JEQ_K, nr[name_], "eperm", 0)
    p.jump(_JEQ_K, nr["clone3"], "enosys", 0)  # flags live in memory: make libc use clone()
    p.jump(_JEQ_K, nr["clone"], "clone", 0)
    p.jump(_JEQ_K, nr["socket"], "socket", 0)
    p.jump(_JEQ_K, nr["ioctl"], "ioctl", 0)
    p.jump(_JEQ_K, nr["personality"], "personality", 0)
    p.ret(RET_ALLOW)

    p.label("clone")
    p.load(_arg_low(0))
    p.jump(_JSET_K, CLONE_NAMESPACES, "eperm", "allow")

    p.label("socket")
    p.load(_arg_low(0))
    for family in (AF_UNIX, AF_INET, AF_INET6, AF_NETLINK):  # libzmq needs getifaddrs
        p.jump(_JEQ_K, family, "allow", 0)
    p.ret(errno_ret(errno.EAFNOSUPPORT))

    p.label("ioctl")
    p.load(_arg_low(1))
    p.jump(_JEQ_K, TIOCSTI, "eperm", 0)
    p.jump(_JEQ_K, TIOCLINUX, "eperm", "allow")

    p.label("personality")
    p.load(_arg_low(0))
    for value in ALLOWED_PERSONALITIES:
        p.jump(_JEQ_K, value, "allow", 0)

    p.label("eperm")
    p.ret(errno_ret(errno.EPERM))
    p.label("enosys")
    p.ret(errno_ret(errno.ENOSYS))
    p.label("allow")
    p.ret(RET_ALLOW)
    p.label("kill")
    p.ret(RET_KILL_PROCESS)
    return p.assemble()
