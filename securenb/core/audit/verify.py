"""Offline verification of an audit log from its files and the log's public key.

Everything is recomputed from ``entries.jsonl``: each line is hashed as a leaf
and the tree is rebuilt in one streaming pass (hashing only; no JSON parsing),
answering the root at the size of every checkpoint. A checkpoint is good when
its signature verifies with the key and its root is the root of the first
``size`` entries; two good checkpoints are then consistent by construction,
since one tree is a prefix of the other. ``tree.bin``, the writer's index, is
never trusted: it is read only after a mismatch, to name the entry that changed.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from securenb.core.audit.merkle import EMPTY_ROOT, HASH_SIZE, MemoryTree, node_hash
from securenb.core.audit.note import Checkpoint, SignedNote, verify_note
from securenb.core.audit.storage import (
    CHECKPOINTS,
    ENTRIES,
    LOCK,
    TREE,
    CheckpointRecord,
    iter_lines,
    leaf_hashes,
    parse_checkpoint_record,
    read_range,
    split_checkpoints,
    stored_count,
)
from securenb.core.keys import PublicKey
from securenb.errors import AuditError, WorkspaceError, at

CHUNK_LEVEL = 16
"""Leaves are hashed in aligned chunks of 2**16: bounded memory, list-speed hashing."""


@dataclass(frozen=True)
class AuditReport:
    """What verification established; ``problems`` is empty when the log is intact."""

    directory: Path
    entries: int
    checkpoints: int
    head: Checkpoint | None
    problems: tuple[str, ...]
    head_note: SignedNote | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        head = self.head
        return {
            "directory": str(self.directory),
            "ok": self.ok,
            "entries": self.entries,
            "checkpoints": self.checkpoints,
            "origin": head.origin if head else None,
            "tree_size": head.size if head else None,
            "root_hash": head.root.hex() if head else None,
            "problems": list(self.problems),
        }


class AuditVerificationError(AuditError):
    """The log failed verification; ``report`` lists every problem found."""

    def __init__(self, report: AuditReport) -> None:
        self.report = report
        count = len(report.problems)
        super().__init__(
            f"{report.directory}: audit log failed verification ({count} problem"
            f"{'s' if count > 1 else ''}):\n" + "\n".join(f"- {p}" for p in report.problems)
        )


class _PrefixRoots:
    """Streams leaf hashes once and records MTH(D[0:s]) for each wanted size s."""

    def __init__(self, sizes: Iterable[int]) -> None:
        self.wanted = sorted(set(sizes))
        self.roots: dict[int, bytes] = {}
        self.frontier: list[tuple[int, bytes]] = []
        self.base = 0
        self.buffer: list[bytes] = []
        self._next = 0
        self._take(0, None)

    def feed(self, hashes: list[bytes]) -> None:
        self.buffer.extend(hashes)
        chunk = 1 << CHUNK_LEVEL
        if len(self.buffer) >= chunk:
            whole = len(self.buffer) - len(self.buffer) % chunk
            for lo in range(0, whole, chunk):
                self._chunk(self.buffer[lo : lo + chunk])
            del self.buffer[:whole]

    def finish(self) -> int:
        if self.buffer:
            self._chunk(self.buffer)
            self.buffer = []
        return self.base

    def _take(self, limit: int, tree: MemoryTree | None) -> None:
        """Answer every wanted size up to base + ``limit`` from the frontier and ``tree``."""
        while self._next < len(self.wanted) and self.wanted[self._next] <= self.base + limit:
            size = self.wanted[self._next]
            nodes = [h for _, h in self.frontier]
            rest, start = size - self.base, 0
            for level in range(CHUNK_LEVEL, -1, -1):
                if tree is not None and rest >> level & 1:
                    nodes.append(tree.levels[level][start >> level])
                    start += 1 << level
            root = EMPTY_ROOT if not nodes else nodes[-1]
            for left in reversed(nodes[:-1]):
                root = node_hash(left, root)
            self.roots[size] = root
            self._next += 1

    def _chunk(self, leaves: list[bytes]) -> None:
        tree = MemoryTree(leaves)
        self._take(len(leaves), tree)
        self.base += len(leaves)
        if len(leaves) == 1 << CHUNK_LEVEL:
            level, node = CHUNK_LEVEL, tree.levels[CHUNK_LEVEL][0]
            while self.frontier and self.frontier[-1][0] == level:
                node = node_hash(self.frontier.pop()[1], node)
                level += 1
            self.frontier.append((level, node))


@contextlib.contextmanager
def _shared_lock(directory: Path) -> Iterator[None]:
    """Hold the writers' lock shared, so no append is caught half-way through."""
    try:
        fd = os.open(directory / LOCK, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:  # a copy without its lock file: nobody is writing to it
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)


def _open_file(path: Path) -> int | None:
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise WorkspaceError(at(path, f"cannot read: {exc}")) from exc


def verify_log(
    directory: Path | str,
    public_key: PublicKey,
    *,
    trusted: Checkpoint | Sequence[Checkpoint] | None = None,
    origin: str | None = None,
) -> AuditReport:
    """Verify an audit log offline; raise AuditVerificationError listing every problem.

    ``trusted`` are checkpoints kept from an earlier look (or from a witness): the
    log must still extend each, which catches a rollback of entries and
    checkpoints together, the one change the files alone cannot reveal.
    Every checkpoint must be signed by ``public_key`` under its own origin as key
    name (a matching key hash is not enough) and, given ``origin``, be of that log.
    A missing or unreadable log raises WorkspaceError ("could not check").
    """
    kept = (trusted,) if isinstance(trusted, Checkpoint) else tuple(trusted or ())
    directory = Path(directory)
    with _shared_lock(directory):
        entries_fd = _open_file(directory / ENTRIES)
        cps_fd = _open_file(directory / CHECKPOINTS)
        try:
            if entries_fd is None and cps_fd is None:
                raise WorkspaceError(at(directory, "no audit log here (no entries or checkpoints)"))
            return _verify(directory, entries_fd, cps_fd, public_key, kept, origin)
        finally:
            for fd in (entries_fd, cps_fd):
                if fd is not None:
                    os.close(fd)


def _verify(
    directory: Path,
    entries_fd: int | None,
    cps_fd: int | None,
    key: PublicKey,
    trusted: tuple[Checkpoint, ...],
    origin: str | None,
) -> AuditReport:
    problems: list[str] = []
    entries_path, cps_path = directory / ENTRIES, directory / CHECKPOINTS

    # 1. Checkpoints: parse, check signatures, check each extends the one before.
    good: list[CheckpointRecord] = []
    count = 0
    if cps_fd is None:
        problems.append(at(cps_path, "missing: no signed checkpoint covers the entries"))
    else:
        data = read_range(cps_fd, 0, os.fstat(cps_fd).st_size)
        ranges, end = split_checkpoints(data)
        count = len(ranges)
        for number, (start, stop) in enumerate(ranges):
            try:
                record = parse_checkpoint_record(data, start, stop, cps_path, number)
                verify_note(record.note, key, name=record.checkpoint.origin,
                            source=f"{cps_path}: checkpoint #{number}")
            except AuditError as exc:
                problems.append(str(exc))
                continue
            if origin is not None and record.checkpoint.origin != origin:
                problems.append(f"{cps_path}: checkpoint #{number} names log "
                                f"{record.checkpoint.origin!r}, not {origin!r}")
                continue
            problems.extend(_sequence_problems(cps_path, good, record))
            good.append(record)
        if end < len(data):
            problems.append(at(cps_path, f"bytes {end}..{len(data)} after the last checkpoint "
                                         "are not a complete checkpoint (a cut-short write?)"))
        if not ranges:
            problems.append(at(cps_path, "holds no checkpoint"))

    # 2. Entries: one streaming pass of leaf hashing answers the root at every size.
    sizes = [r.checkpoint.size for r in good] + [t.size for t in trusted]
    prefix = _PrefixRoots(sizes)
    cut_short = False
    if entries_fd is None:
        problems.append(at(entries_path, "missing"))
    else:
        entries_bytes = os.fstat(entries_fd).st_size
        for lines in iter_lines(entries_fd, 0, entries_bytes):
            prefix.feed(leaf_hashes(lines))
        cut_short = entries_bytes > 0 and os.pread(entries_fd, 1, entries_bytes - 1) != b"\n"
    total = prefix.finish()
    if cut_short:
        problems.append(at(entries_path, f"entry {total} (line {total + 1}) is cut short: "
                                         "no newline at the end of the file"))

    # 3. Each good checkpoint against the entries.
    problems.extend(_match_problems(directory, entries_fd, good, prefix.roots, total))
    for checkpoint in trusted:
        problems.extend(_trusted_problems(entries_path, checkpoint, prefix.roots, total, good))

    head = good[-1].checkpoint if good else None
    report = AuditReport(directory, total, count, head, tuple(problems),
                         good[-1].note if good else None)
    if problems:
        raise AuditVerificationError(report)
    return report


def _sequence_problems(
    path: Path, good: list[CheckpointRecord], record: CheckpointRecord
) -> list[str]:
    if not good:
        return []
    first, previous, cp = good[0].checkpoint, good[-1], record.checkpoint
    where = f"{path}: checkpoint #{record.number} (size {cp.size})"
    if cp.origin != first.origin:
        return [f"{where} names log {cp.origin!r}, not {first.origin!r}"]
    prev = previous.checkpoint
    if cp.size < prev.size:
        return [f"{where} does not extend checkpoint #{previous.number} (size {prev.size}): "
                "the log shrank"]
    if cp.size == prev.size and cp.root != prev.root:
        return [f"{where} does not extend checkpoint #{previous.number}: same size, "
                "different root (a fork)"]
    return []


def _match_problems(
    directory: Path,
    entries_fd: int | None,
    good: list[CheckpointRecord],
    roots: dict[int, bytes],
    total: int,
) -> list[str]:
    entries_path, cps_path = directory / ENTRIES, directory / CHECKPOINTS
    problems: list[str] = []
    matched = [r for r in good if r.checkpoint.size <= total
               and roots[r.checkpoint.size] == r.checkpoint.root]
    confirmed = max((r.checkpoint.size for r in matched), default=0)
    previous: CheckpointRecord | None = None
    first_bad: int | None = None
    for record in good:
        cp = record.checkpoint
        where = f"{cps_path}: checkpoint #{record.number} (size {cp.size})"
        after = (f" checkpoint #{previous.number} (size {previous.checkpoint.size})"
                 if previous else " the empty log")
        if cp.size > total:
            problems.append(at(entries_path, f"truncated: holds {total} entries but checkpoint "
                                             f"#{record.number} signs {cp.size}; entries "
                                             f"{total}..{cp.size - 1} are missing"))
        elif roots[cp.size] != cp.root:
            if cp.size <= confirmed:
                problems.append(
                    f"{where} does not extend{after}: its root is not the root of entries "
                    f"0..{cp.size - 1}, which a later checkpoint confirms (the log forked)")
            else:
                first_bad = record.checkpoint.size if first_bad is None else first_bad
                problems.append(
                    f"{where} does not match the entries: entries {confirmed}..{cp.size - 1} of "
                    f"{ENTRIES} do not hash to its root; an entry there was edited, removed, "
                    f"inserted or reordered, or the checkpoint does not extend{after}")
        previous = record
    if first_bad is not None and entries_fd is not None:
        problems[:0] = _pinpoint(directory, entries_fd, first_bad)
    last = good[-1].checkpoint.size if good else 0
    if total > last:
        problems.append(at(entries_path, f"entries {last}..{total - 1} (lines {last + 1}.."
                                         f"{total}) are not covered by any signed checkpoint: "
                                         "appended outside the log, or left by a crashed writer "
                                         "(the next append moves them to quarantine/)"))
    return problems


def _pinpoint(directory: Path, entries_fd: int, limit: int) -> list[str]:
    """Name the first entry that differs from the leaf hash recorded when it was appended."""
    tree_fd = _open_file(directory / TREE)
    if tree_fd is None:
        return []
    try:
        tree = read_range(tree_fd, 0, os.fstat(tree_fd).st_size)
    finally:
        os.close(tree_fd)
    recorded: list[bytes] = []
    while (stored_count(len(recorded)) + 1) * HASH_SIZE <= len(tree):
        pos = stored_count(len(recorded)) * HASH_SIZE
        recorded.append(tree[pos : pos + HASH_SIZE])
    actual: list[bytes] = []
    for lines in iter_lines(entries_fd, 0, os.fstat(entries_fd).st_size):
        actual.extend(leaf_hashes(lines))
    common = min(len(actual), len(recorded), limit)
    index = next((i for i in range(common) if actual[i] != recorded[i]), None)
    if index is None:
        return []
    where = at(directory / ENTRIES, f"entry {index} (line {index + 1})")
    position = {h: i for i, h in enumerate(recorded)}
    origin = position.get(actual[index])
    if origin is None:
        return [f"{where} was edited (or a line was inserted): it is not any entry the log "
                "appended"]
    if origin < index:
        return [f"{where} repeats entry {origin}: entries were reordered or duplicated"]
    if origin < len(actual) and actual[origin] == recorded[index]:
        return [f"{where} was swapped with entry {origin}: entries were reordered"]
    if origin == index + 1:
        return [f"{where} was removed: the entries after it moved up by one"]
    return [f"{where} holds entry {origin}: entries were removed or reordered"]


def _trusted_problems(
    path: Path,
    trusted: Checkpoint,
    roots: dict[int, bytes],
    total: int,
    good: list[CheckpointRecord],
) -> list[str]:
    if good and trusted.origin != good[0].checkpoint.origin:
        return [f"the trusted checkpoint is for log {trusted.origin!r}, "
                f"not {good[0].checkpoint.origin!r}"]
    if trusted.size > total:
        return [at(path, f"rolled back: holds {total} entries but the trusted checkpoint "
                         f"covers {trusted.size}")]
    if roots[trusted.size] != trusted.root:
        return [at(path, f"does not extend the trusted checkpoint (size {trusted.size}): "
                         "its history was rewritten")]
    return []
