"""On-disk layout of an audit log, shared by the writer and the offline verifier.

``entries.jsonl``  one RFC 8785 JSON entry per line; line i is leaf i (the source of truth)
``checkpoints``    signed checkpoint notes, each followed by a blank line, one per batch
``tree.bin``       32-byte hashes in "stored hash" order: each leaf hash followed by the
                   hashes of the full subtrees it completes (2n - popcount(n) records);
                   an index for O(log n) proofs and appends, rebuilt from the entries if lost
``offsets.bin``    8-byte end offset of each entry line: reading entry i without a scan
                   (a cache, checked against tree.bin's leaf hash on every use)
``state``          a checksummed cache of sizes and offsets, so an append needs no scan
``lock``           the fcntl lock that serialises writers across processes
``quarantine/``    entries found uncovered by any checkpoint, moved aside on recovery
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from securenb.core.audit.merkle import HASH_SIZE, largest_power_of_two_below, node_hash
from securenb.core.audit.note import Checkpoint, SignedNote, parse_note
from securenb.errors import AuditError, at

ENTRIES = "entries.jsonl"
CHECKPOINTS = "checkpoints"
TREE = "tree.bin"
OFFSETS = "offsets.bin"
STATE = "state"
LOCK = "lock"
QUARANTINE = "quarantine"

READ_CHUNK = 1 << 24

datasync = getattr(os, "fdatasync", os.fsync)
"""fdatasync where the OS has it (Linux), else fsync (macOS): make written data durable."""


def stored_count(size: int) -> int:
    """Hashes stored for a tree of ``size`` leaves: every leaf and every full subtree."""
    return 2 * size - size.bit_count()


def stored_index(level: int, index: int) -> int:
    """Position in tree.bin of the full subtree (level, index).

    It is written right after the leaf that completes it, ``m = (index+1)*2**level - 1``,
    which sits after ``stored_count(m)`` hashes, and after the ``level - 1`` smaller
    subtrees that same leaf completes.
    """
    last_leaf = ((index + 1) << level) - 1
    return stored_count(last_leaf) + level


def frontier_levels(size: int) -> list[tuple[int, int]]:
    """(level, index) of the full subtrees that make up a tree of ``size``, left to right."""
    out = []
    start = 0
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            out.append((level, start >> level))
            start += 1 << level
    return out


def extend(frontier: list[bytes], size: int, leaf_hashes: list[bytes]) -> list[bytes]:
    """Append leaves to a tree given by its frontier; return the tree.bin records.

    ``frontier`` is updated in place: appending is a binary counter whose carries
    are the subtrees each new leaf completes.
    """
    records: list[bytes] = []
    for offset, node in enumerate(leaf_hashes):
        records.append(node)
        n = size + offset
        while n & 1:
            node = node_hash(frontier.pop(), node)
            records.append(node)
            n >>= 1
        frontier.append(node)
    return records


class HashStore:
    """Reads tree.bin; serves subtree hashes for proofs of trees up to ``size``."""

    def __init__(self, fd: int, size: int, path: Path) -> None:
        self.fd, self.size, self.path = fd, size, path

    def read(self, level: int, index: int) -> bytes:
        pos = stored_index(level, index) * HASH_SIZE
        data = os.pread(self.fd, HASH_SIZE, pos)
        if len(data) != HASH_SIZE:
            raise AuditError(at(self.path, f"hash ({level}, {index}) at byte {pos} is missing"))
        return data

    def subtree_hash(self, lo: int, hi: int) -> bytes:
        if not 0 <= lo < hi <= self.size:
            raise ValueError(f"subtree [{lo}, {hi}) is outside a tree of {self.size} leaves")
        n = hi - lo
        if n & (n - 1) == 0 and lo % n == 0:
            return self.read(n.bit_length() - 1, lo // n)
        k = largest_power_of_two_below(n)
        return node_hash(self.subtree_hash(lo, lo + k), self.subtree_hash(lo + k, hi))

    def frontier(self) -> list[bytes]:
        return [self.read(level, index) for level, index in frontier_levels(self.size)]


@dataclass(frozen=True)
class CheckpointRecord:
    """One checkpoint of the checkpoints file, with its byte range for messages."""

    number: int
    offset: int
    end: int
    note: SignedNote
    checkpoint: Checkpoint


def split_checkpoints(data: bytes) -> tuple[list[tuple[int, int]], int]:
    """Byte ranges of the complete records of a checkpoints file, and where they end.

    A record is a note (text, blank line, signature lines) plus one blank line;
    bytes after the last complete record are an incomplete one (a cut-short write).
    """
    ranges: list[tuple[int, int]] = []
    pos = 0
    while True:
        body_end = data.find(b"\n\n", pos)
        end = data.find(b"\n\n", body_end + 2) if body_end >= 0 else -1
        if end < 0:
            return ranges, pos
        ranges.append((pos, end + 2))
        pos = end + 2


def parse_checkpoint_record(
    data: bytes, start: int, end: int, path: Path, number: int, base_offset: int = 0
) -> CheckpointRecord:
    """Parse one record of :func:`split_checkpoints`; errors name its number and byte."""
    source = f"{path}: checkpoint #{number} at byte {base_offset + start}"
    note = parse_note(data[start : end - 1], source)
    checkpoint = Checkpoint.from_text(note.text, source)
    return CheckpointRecord(number, base_offset + start, base_offset + end, note, checkpoint)


def parse_checkpoints(
    data: bytes, path: Path, *, base_offset: int = 0, first_number: int = 0
) -> tuple[list[CheckpointRecord], int]:
    """Parse every complete record strictly; return them and where they end.

    ``data`` is the file from ``base_offset`` on. A complete record that does not
    parse is damage, not an interrupted write: AuditError.
    """
    ranges, end = split_checkpoints(data)
    records = [
        parse_checkpoint_record(data, start, stop, path, first_number + i, base_offset)
        for i, (start, stop) in enumerate(ranges)
    ]
    return records, base_offset + end


def read_range(fd: int, start: int, stop: int) -> bytes:
    """Read bytes [start, stop) of a file, however many reads it takes."""
    parts = []
    while start < stop:
        chunk = os.pread(fd, min(stop - start, READ_CHUNK), start)
        if not chunk:
            break
        parts.append(chunk)
        start += len(chunk)
    return b"".join(parts)


def iter_lines(fd: int, start: int, stop: int) -> Iterator[list[bytes]]:
    """Yield the complete lines of bytes [start, stop) in big batches.

    A final line without its newline is not yielded (an interrupted write).
    """
    pending = b""
    pos = start
    while pos < stop:
        chunk = os.pread(fd, min(READ_CHUNK, stop - pos), pos)
        if not chunk:
            break
        pos += len(chunk)
        data = pending + chunk if pending else chunk
        cut = data.rfind(b"\n")
        if cut < 0:
            pending = data
            continue
        yield data[:cut].split(b"\n")
        pending = data[cut + 1 :]


def find_line_end(fd: int, start: int, stop: int, count: int) -> int | None:
    """Offset just past the ``count``-th newline after ``start``, or None if there are fewer."""
    pos = start
    while count and pos < stop:
        chunk = os.pread(fd, min(READ_CHUNK, stop - pos), pos)
        if not chunk:
            break
        found = chunk.count(b"\n")
        if found < count:
            count -= found
            pos += len(chunk)
            continue
        cut = -1
        for _ in range(count):
            cut = chunk.index(b"\n", cut + 1)
        return pos + cut + 1
    return pos if count == 0 else None


def leaf_hashes(lines: list[bytes]) -> list[bytes]:
    """Leaf hashes of many entries at once (one comprehension: no per-call overhead)."""
    sha256 = hashlib.sha256
    return [sha256(b"\x00" + line).digest() for line in lines]


def pwrite_all(fd: int, data: bytes, offset: int) -> None:
    """pwrite until everything is written (a short write is legal on any file)."""
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written
