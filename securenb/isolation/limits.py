"""Resource limits of one sandbox, parsed once from policy and options.

The same numbers become rlimits (bwrap), container flags (podman, docker) and
pod resources (kubernetes), so every backend enforces what the record says.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from securenb.isolation.errors import IsolationError

_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)


def parse_size(text: str | int, what: str = "memory") -> int:
    """Bytes in ``text`` ("4g", "512M", "1.5GiB", 1024); a bad value names ``what``."""
    if isinstance(text, int):
        value = text
    else:
        match = _SIZE.match(text)
        if match is None:
            raise IsolationError(f"{what}: {text!r} is not a size (examples: 512m, 4g, 1.5GiB)")
        value = int(float(match.group(1)) * _UNITS[match.group(2).lower()])
    if value <= 0:
        raise IsolationError(f"{what}: must be positive, got {text!r}")
    return value


@dataclass(frozen=True)
class Limits:
    """What one sandbox may use. ``tmpfs_bytes`` caps each private tmpfs (/tmp, home);
    ``output_bytes`` what a run may leave in the output folder, ``log_bytes`` the
    kernel's own stdout/stderr, ``ipc_bytes`` the folder of its sockets."""

    memory_bytes: int
    cpu_seconds: int
    processes: int
    timeout_seconds: int
    tmpfs_bytes: int = 1 << 30
    output_bytes: int = 16 << 30
    log_bytes: int = 16 << 20
    ipc_bytes: int = 1 << 20

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if value <= 0:
                raise IsolationError(f"limit {name} must be positive, got {value}")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def k8s_memory(self) -> str:
        """Kubernetes quantity (binary units, exact)."""
        return f"{self.memory_bytes // (1 << 20)}Mi" if self.memory_bytes >= 1 << 20 else str(
            self.memory_bytes
        )
