"""What a scan may spend and what it may additionally trust.

Every limit exists so that a hostile file (zip bomb, giant header, endless pickle) ends
in an UNKNOWN verdict within bounded time and memory instead of a crash or a hang.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MiB = 1 << 20
GiB = 1 << 30


@dataclass(frozen=True)
class ScanOptions:
    """Limits and policy for one scan; the defaults suit models up to hundreds of GB."""

    extra_allowed_globals: tuple[str, ...] = field(default_factory=tuple)
    """More globals to trust: ``module:qualname``, ``module.name`` or ``module:*``."""
    max_decompressed_bytes: int = 4 * GiB
    """Total bytes any wrapper (gzip, zip deflate, ...) may inflate to, per scanned file."""
    max_compression_ratio: int = 200
    """Inflating more than this many times the compressed size (past 64 MiB) is a bomb."""
    max_depth: int = 6
    """Nesting of archives, wrappers and pickles inside bytes."""
    max_members: int = 200_000
    """Members of one archive, files of one folder."""
    max_header_bytes: int = 256 * MiB
    """Largest header read (safetensors JSON, GGUF metadata, zip directory, npy dict)."""
    max_pickle_ops: int = 50_000_000
    """Opcodes per pickle stream."""
    max_memo: int = 5_000_000
    """Memo entries per pickle stream."""
    max_findings: int = 200
    """Findings kept per file; the rest are counted in one summary finding."""
    hdf5_timeout_s: float = 60.0
    """Time the isolated HDF5 inspector may take."""
