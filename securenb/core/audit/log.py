"""The append-only audit log: durable group-committed appends, signed checkpoints.

An append is acknowledged only once its entries, their tree hashes and the
checkpoint that signs the new tree are all fsynced, in that order; so after a
crash every acknowledged entry is covered by a durable signed checkpoint.
Appends from many threads are coalesced into one write + fsync per batch (group
commit), and processes serialise on an fcntl lock, each adopting the others'
appends from the checksummed ``state`` cache and the hash store instead of
re-reading the log.

Crash policy: entries found on disk but not covered by any checkpoint (a
writer died between the two writes, or someone appended behind the log's
back), and a torn last checkpoint, are never signed. The next writer moves the
uncovered bytes to ``quarantine/``, truncates the log back to its last
checkpoint and appends a signed ``audit.recovered`` entry naming how many
entries and bytes were removed and their SHA-256.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import itertools
import os
import struct
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from securenb.core.audit.entry import AuditEntry, utc_now
from securenb.core.audit.merkle import (
    HASH_SIZE,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root_from_frontier,
    verify_consistency,
    verify_inclusion,
)
from securenb.core.audit.note import (
    Checkpoint,
    NoteSigner,
    SignedCheckpoint,
    check_key_name,
    verify_note,
)
from securenb.core.audit.proof import InclusionProof
from securenb.core.audit.storage import (
    CHECKPOINTS,
    ENTRIES,
    LOCK,
    OFFSETS,
    QUARANTINE,
    STATE,
    TREE,
    CheckpointRecord,
    HashStore,
    datasync,
    extend,
    find_line_end,
    iter_lines,
    leaf_hashes,
    parse_checkpoints,
    pwrite_all,
    read_range,
    stored_count,
)
from securenb.core.audit.trust import keep, load_kept
from securenb.core.fsutil import atomic_write_bytes, fsync_dir, private_dir
from securenb.core.keys import PrivateKey
from securenb.errors import AuditError, WorkspaceError, at

SignerSource = PrivateKey | Callable[[], PrivateKey]

RECOVERY_ACTION = "audit.recovered"
SYSTEM_ACTOR = "securenb"

_STATE = struct.Struct("<8sQQQQQ8s")
_STATE_MAGIC = b"SNBAUD01"
_STATE_SIZE = _STATE.size + HASH_SIZE
_TAIL_CHUNK = 1 << 20


@dataclass(frozen=True)
class AuditRecord:
    """An entry read back from the log, with its index and exact leaf bytes."""

    index: int
    entry: AuditEntry
    leaf: bytes


@dataclass(frozen=True)
class AppendReceipt:
    """Entries ``index .. index + count - 1`` are durable and signed by ``head``."""

    index: int
    count: int
    head: SignedCheckpoint


@dataclass(frozen=True)
class _State:
    size: int
    entries_bytes: int
    checkpoints_bytes: int
    last_offset: int
    count: int
    generation: bytes

    def pack(self) -> bytes:
        body = _STATE.pack(_STATE_MAGIC, self.size, self.entries_bytes, self.checkpoints_bytes,
                           self.last_offset, self.count, self.generation)
        return body + hashlib.sha256(body).digest()

    @classmethod
    def unpack(cls, data: bytes) -> _State | None:
        if len(data) != _STATE_SIZE:
            return None
        body, digest = data[: _STATE.size], data[_STATE.size :]
        if hashlib.sha256(body).digest() != digest:
            return None
        magic, size, entries_bytes, checkpoints_bytes, last_offset, count, generation = (
            _STATE.unpack(body)
        )
        if magic != _STATE_MAGIC:
            return None
        return cls(size, entries_bytes, checkpoints_bytes, last_offset, count, generation)


@dataclass(frozen=True)
class _View:
    """The committed log: its last checkpoint and the byte extents it covers."""

    state: _State
    head: SignedCheckpoint
    frontier: tuple[bytes, ...]

    @property
    def sizes(self) -> tuple[int, int, int]:
        s = self.state
        return s.entries_bytes, s.checkpoints_bytes, stored_count(s.size) * HASH_SIZE


@dataclass(frozen=True)
class _Scan:
    """What a full look at the files found: the committed view and the debris after it."""

    view: _View | None
    index_ok: bool
    entries_tail: tuple[int, int]
    checkpoints_tail: tuple[int, int]


@dataclass
class _Batch:
    """Entries written and durable, then covered by their checkpoint (``head``)."""

    requests: list[_Request]
    first: int
    size: int
    entries_end: int
    frontier: list[bytes]
    head: SignedCheckpoint | None = None


def _lines_of(requests: list[_Request]) -> list[bytes]:
    return [line for request in requests for line in request.lines]


class _Request:
    __slots__ = ("done", "error", "lead", "lines", "receipt", "wake")

    def __init__(self, lines: list[bytes], mutex: threading.Lock) -> None:
        self.lines = lines
        self.wake = threading.Condition(mutex)
        self.done = False
        self.lead = False
        self.error: BaseException | None = None
        self.receipt: AppendReceipt | None = None


class AuditLog:
    """An RFC 9162 Merkle log of audit entries in ``directory``.

    ``signer`` is needed to append; without it the log is read-only. Given a
    key, the log is created or recovered from a crash here; given a callable
    that unlocks the key, that happens on the first append (so reading never
    asks for a passphrase). ``origin`` names a new log in its checkpoints
    (default ``securenb.local/audit/<key id>``). Open one AuditLog per
    process (after any fork) and share it among threads.
    """

    def __init__(
        self,
        directory: Path | str,
        signer: SignerSource | None = None,
        *,
        origin: str | None = None,
    ) -> None:
        self.directory = Path(directory)
        self._signer_source = signer
        self._signer = signer if isinstance(signer, PrivateKey) else None
        self._origin = origin
        if origin is not None:
            check_key_name(origin)
        self._writable = signer is not None
        if self._writable:
            private_dir(self.directory)
        elif not (self.directory / CHECKPOINTS).is_file():
            raise WorkspaceError(at(self.directory, "no audit log here (no checkpoints file)"))
        self._fds: dict[str, int] = {}
        flags = os.O_RDWR | os.O_CREAT if self._writable else os.O_RDONLY
        try:
            for name in (ENTRIES, CHECKPOINTS, TREE, OFFSETS, STATE, LOCK):
                path = self.directory / name
                if self._writable or path.exists():
                    self._fds[name] = os.open(path, flags | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            self.close()
            raise WorkspaceError(at(self.directory, f"cannot open the audit log: {exc}")) from exc
        if self._writable:
            fsync_dir(self.directory)
        self._view: _View | None = None
        self._verified = False
        self._pending_checked = False
        self._io = threading.RLock()
        self._lock_depth = 0
        self._mutex = threading.Lock()
        self._queue: list[_Request] = []
        self._leader = False
        self._note_signer: NoteSigner | None = None
        self._syncer: ThreadPoolExecutor | None = None
        if self._signer is not None:  # create, or recover from a crash, right away
            try:
                with self._locked(exclusive=True):
                    self._refresh(write=True)
            except BaseException:
                self.close()
                raise

    # -- lifecycle -------------------------------------------------------------------

    def close(self) -> None:
        if self._syncer is not None:
            self._syncer.shutdown()
            self._syncer = None
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- appending -------------------------------------------------------------------

    def append(
        self,
        action: str,
        subject: str,
        *,
        details: Mapping[str, Any] | None = None,
        actor: str | None = None,
        time: datetime | None = None,
    ) -> AppendReceipt:
        """Append one entry; return once it is durable and signed.

        Concurrent calls from several threads share one write, fsync and signature.
        """
        entry = AuditEntry.new(action, subject, details=details, actor=actor, time=time)
        return self._submit([entry.canonical()])

    def append_many(self, entries: Iterable[AuditEntry]) -> AppendReceipt:
        """Append entries as one contiguous batch: one fsync and one checkpoint for all."""
        lines = [entry.canonical() for entry in entries]
        if not lines:
            raise AuditError("append_many: no entries to append")
        return self._submit(lines)

    def _submit(self, lines: list[bytes]) -> AppendReceipt:
        """Group commit: one thread (the leader) commits everything queued so far.

        The others sleep until their batch is done; the leader then hands over
        to the oldest waiting request, which commits all that queued meanwhile.
        """
        request = _Request(lines, self._mutex)
        with self._mutex:
            self._queue.append(request)
            if self._leader:
                while not (request.done or request.lead):
                    request.wake.wait()
            if not request.done:
                self._leader = True
                batch, self._queue = self._queue, []
        if not request.done:
            try:
                self._lead(batch)
            finally:
                with self._mutex:
                    if self._queue:
                        self._queue[0].lead = True
                        self._queue[0].wake.notify()
                    else:
                        self._leader = False
        if request.error is not None:
            raise request.error
        assert request.receipt is not None
        return request.receipt

    def _lead(self, requests: list[_Request]) -> None:
        """Commit the queued ``requests`` as one batch; every request gets the outcome."""
        try:
            self._signing_key()
            with self._locked(exclusive=True):
                self._refresh(write=True)
                try:  # from here on, anything past the view was written by us
                    batch = self._write_batch(_lines_of(requests), requests)
                    self._seal(batch)
                except BaseException:
                    self._roll_back()
                    raise
        except BaseException as exc:
            with self._mutex:
                for item in requests:
                    item.error, item.done = exc, True
                    item.wake.notify()
            return
        self._finish(batch)

    def _finish(self, batch: _Batch) -> None:
        """Acknowledge a sealed batch: receipts out, waiting threads woken."""
        assert batch.head is not None
        with self._mutex:
            index = batch.first
            for item in batch.requests:
                item.receipt = AppendReceipt(index, len(item.lines), batch.head)
                item.done = True
                item.wake.notify()
                index += len(item.lines)

    def _roll_back(self) -> None:
        """After a failed commit, drop what no durable checkpoint covers (best effort;
        whatever remains is found and quarantined by the next writer)."""
        view = self._view
        if view is None:
            return
        entries_bytes, checkpoints_bytes, tree_bytes = view.sizes
        with contextlib.suppress(OSError):
            os.ftruncate(self._fds[ENTRIES], entries_bytes)
            os.ftruncate(self._fds[TREE], tree_bytes)
            os.ftruncate(self._fds[CHECKPOINTS], checkpoints_bytes)

    def _pool(self) -> ThreadPoolExecutor:
        if self._syncer is None:
            self._syncer = ThreadPoolExecutor(1, thread_name_prefix="securenb-audit-sync")
        return self._syncer

    def _signing_key(self) -> PrivateKey:
        if self._signer is None:
            if self._signer_source is None:
                raise AuditError(at(self.directory, "the audit log was opened read-only"))
            assert callable(self._signer_source)
            key = self._signer_source()
            if not isinstance(key, PrivateKey):
                raise AuditError(at(self.directory, "the signer callable returned no PrivateKey"))
            self._signer = key
        return self._signer

    def _signer_for(self, origin: str) -> NoteSigner:
        if self._note_signer is None or self._note_signer.name != origin:
            self._note_signer = NoteSigner(origin, self._signing_key())
        return self._note_signer

    def _commit(self, lines: list[bytes]) -> SignedCheckpoint:
        """Write and seal one batch of our own (locks held, view fresh)."""
        batch = self._write_batch(lines, [])
        self._seal(batch)
        assert batch.head is not None
        return batch.head

    def _write_batch(self, lines: list[bytes], requests: list[_Request]) -> _Batch:
        """Step 1: write entries, tree hashes and offsets; make entries and hashes durable."""
        view = self._view
        assert view is not None
        size, start, frontier = view.state.size, view.state.entries_bytes, list(view.frontier)
        records = extend(frontier, size, leaf_hashes(lines))
        ends = list(itertools.accumulate((len(line) + 1 for line in lines), initial=start))
        tree_fd = self._fds[TREE]
        pwrite_all(self._fds[ENTRIES], b"\n".join(lines) + b"\n", start)
        pwrite_all(tree_fd, b"".join(records), stored_count(size) * HASH_SIZE)
        _write_offsets(self._fds[OFFSETS], size, ends[1:])
        # Two files, two fsyncs: side by side (each releases the GIL).
        tree_synced = self._pool().submit(datasync, tree_fd)
        datasync(self._fds[ENTRIES])
        tree_synced.result()
        return _Batch(requests, size, size + len(lines), ends[-1], frontier)

    def _seal(self, batch: _Batch) -> None:
        """Step 2: sign the batch's tree, append its checkpoint durably, publish the view."""
        view = self._view
        assert view is not None
        state = view.state
        checkpoint = Checkpoint(view.head.checkpoint.origin, batch.size,
                                root_from_frontier(batch.frontier))
        note = self._signer_for(checkpoint.origin).sign(checkpoint.text())
        record = note.to_bytes() + b"\n"
        pwrite_all(self._fds[CHECKPOINTS], record, state.checkpoints_bytes)
        datasync(self._fds[CHECKPOINTS])
        batch.head = SignedCheckpoint(checkpoint, note)
        new_state = _State(
            size=batch.size,
            entries_bytes=batch.entries_end,
            checkpoints_bytes=state.checkpoints_bytes + len(record),
            last_offset=state.checkpoints_bytes,
            count=state.count + 1,
            generation=os.urandom(8),
        )
        self._set_view(_View(new_state, batch.head, tuple(batch.frontier)))

    def _set_view(self, view: _View) -> None:
        """Adopt ``view`` and publish it in the state cache (no fsync: it is re-checked)."""
        self._view, self._verified = view, True
        pwrite_all(self._fds[STATE], view.state.pack(), 0)

    # -- keeping up with the files ---------------------------------------------------

    @contextlib.contextmanager
    def _locked(self, *, exclusive: bool) -> Iterator[None]:
        """Thread lock, then the cross-process fcntl lock (shared for readers)."""
        with self._io:
            if not self._fds:
                raise AuditError(at(self.directory, "the audit log is closed"))
            lock_fd = self._fds.get(LOCK)
            if lock_fd is None or self._lock_depth:  # a read-only copy, or already held
                self._lock_depth += 1
                try:
                    yield
                finally:
                    self._lock_depth -= 1
                return
            fcntl.flock(lock_fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            self._lock_depth = 1
            try:
                yield
            finally:
                self._lock_depth = 0
                fcntl.flock(lock_fd, fcntl.LOCK_UN)

    def _file_sizes(self) -> tuple[int, int, int]:
        return (
            os.fstat(self._fds[ENTRIES]).st_size,
            os.fstat(self._fds[CHECKPOINTS]).st_size,
            os.fstat(self._fds[TREE]).st_size if TREE in self._fds else 0,
        )

    def _read_state(self) -> _State | None:
        fd = self._fds.get(STATE)
        return None if fd is None else _State.unpack(os.pread(fd, _STATE_SIZE, 0))

    def _refresh(self, *, write: bool) -> _View:
        """Bring the in-memory view up to date with the files (locks held)."""
        view = self._load(write=write)
        origin = view.head.checkpoint.origin
        if self._origin is not None and origin != self._origin:
            raise AuditError(at(self.directory / CHECKPOINTS,
                                f"this log is {origin!r}, not {self._origin!r}"))
        if write and not self._pending_checked:
            self._finish_pending_quarantine()
            self._pending_checked = True
            assert self._view is not None
            view = self._view
        return view

    def _load(self, *, write: bool) -> _View:
        """The fast path checks the state cache; the slow one scans (and a writer repairs).

        A writer only builds on a view whose head it verified with its own key.
        """
        state = self._read_state()
        sizes = self._file_sizes()
        view = self._view
        if (view and state and state.generation == view.state.generation
                and sizes == view.sizes and (self._verified or not write)):
            return view
        base = self._view_from_state(state, verify=write) if state else None
        if base is not None and base.sizes == sizes:
            self._view, self._verified = base, write
            return base
        scan = self._scan(base, sizes, verify=write)
        if write:
            return self._repair(scan)
        if scan.view is None:
            raise AuditError(at(self.directory, "the audit log has no checkpoint yet"))
        self._view, self._verified = scan.view, False
        return scan.view

    @contextlib.contextmanager
    def _reading(self) -> Iterator[_View]:
        """Shared lock and a fresh view; a writer first creates a log that is not there yet."""
        if self._writable and self._fds and not os.fstat(self._fds[CHECKPOINTS]).st_size:
            with self._locked(exclusive=True):
                self._refresh(write=True)
        with self._locked(exclusive=False):
            yield self._refresh(write=False)

    def _view_from_state(self, state: _State, *, verify: bool) -> _View | None:
        """The view the state cache describes, if the files bear it out; else None."""
        data = read_range(self._fds[CHECKPOINTS], state.last_offset, state.checkpoints_bytes)
        try:
            records, end = parse_checkpoints(data, self.directory / CHECKPOINTS,
                                             base_offset=state.last_offset,
                                             first_number=state.count - 1)
        except AuditError:
            return None
        if len(records) != 1 or end != state.checkpoints_bytes:
            return None
        record = records[0]
        if record.checkpoint.size != state.size or (verify and not self._trusted(record)):
            return None
        if state.entries_bytes and os.pread(
            self._fds[ENTRIES], 1, state.entries_bytes - 1
        ) != b"\n":
            return None
        frontier = self._frontier(state.size)
        if frontier is None or self._offsets_end(state.size) != state.entries_bytes:
            return None
        if root_from_frontier(frontier) != record.checkpoint.root:
            return None
        return _View(state, SignedCheckpoint(record.checkpoint, record.note), tuple(frontier))

    def _frontier(self, size: int) -> list[bytes] | None:
        """The frontier of a tree of ``size`` from tree.bin, or None where it is missing."""
        fd = self._fds.get(TREE)
        if fd is None or os.fstat(fd).st_size < stored_count(size) * HASH_SIZE:
            return None
        return HashStore(fd, size, self.directory / TREE).frontier()

    def _trusted(self, record: CheckpointRecord) -> bool:
        """Whether our own key signed ``record`` (a writer builds on nothing else)."""
        try:
            verify_note(record.note, self._signing_key().public, name=record.checkpoint.origin)
        except AuditError:
            return False
        return True

    def _scan(self, base: _View | None, sizes: tuple[int, int, int], *, verify: bool) -> _Scan:
        """Work out the committed log from the files, from ``base`` (a state the files
        bear out) or from the start."""
        entries_size, cps_size, _ = sizes
        start = base.state.checkpoints_bytes if base else 0
        cps_path = self.directory / CHECKPOINTS
        records, end = parse_checkpoints(
            read_range(self._fds[CHECKPOINTS], start, cps_size), cps_path,
            base_offset=start, first_number=base.state.count if base else 0,
        )
        previous = base.head.checkpoint if base else None
        for record in records:
            self._check_next(previous, record, verify=verify)
            previous = record.checkpoint
        if records:
            last = records[-1]
            head, last_offset = SignedCheckpoint(last.checkpoint, last.note), last.offset
        elif base is not None:
            head, last_offset = base.head, base.state.last_offset
        else:
            if entries_size:
                raise AuditError(at(cps_path, f"no signed checkpoint, but {ENTRIES} holds data"))
            return _Scan(None, index_ok=False, entries_tail=(0, 0),
                         checkpoints_tail=(end, cps_size))
        size = head.checkpoint.size
        base_size = base.state.size if base else 0
        base_entries = base.state.entries_bytes if base else 0
        covered = find_line_end(self._fds[ENTRIES], base_entries, entries_size, size - base_size)
        if covered is None:
            raise AuditError(at(
                self.directory / ENTRIES,
                f"truncated: the last signed checkpoint covers {size} entries but fewer are "
                "left; run `securenb audit verify`",
            ))
        frontier = self._frontier(size)
        index_ok = (frontier is not None and root_from_frontier(frontier) == head.checkpoint.root
                    and self._offsets_end(size) == covered)
        new_state = _State(
            size=size,
            entries_bytes=covered,
            checkpoints_bytes=end,
            last_offset=last_offset,
            count=(base.state.count if base else 0) + len(records),
            generation=os.urandom(8),
        )
        return _Scan(
            _View(new_state, head, tuple(frontier or ())),
            index_ok=index_ok,
            entries_tail=(covered, entries_size),
            checkpoints_tail=(end, cps_size),
        )

    def _check_next(
        self, previous: Checkpoint | None, record: CheckpointRecord, *, verify: bool
    ) -> None:
        where = f"{self.directory / CHECKPOINTS}: checkpoint #{record.number}"
        if verify and not self._trusted(record):
            raise AuditError(f"{where} is not signed by this log's key")
        if previous is None:
            return
        cp = record.checkpoint
        if cp.origin != previous.origin:
            raise AuditError(f"{where} names log {cp.origin!r}, not {previous.origin!r}")
        if cp.size < previous.size or (cp.size == previous.size and cp.root != previous.root):
            raise AuditError(f"{where} (size {cp.size}) does not extend size {previous.size}")

    # -- recovery --------------------------------------------------------------------

    def _repair(self, scan: _Scan) -> _View:
        """Make the files match the committed view (writer, locks held)."""
        if scan.view is None:
            return self._initialize(scan)
        view = scan.view
        if not scan.index_ok:
            view = self._rebuild_index(view)
        tail_start, tail_end = scan.entries_tail
        cp_start, cp_end = scan.checkpoints_tail
        tail = read_range(self._fds[ENTRIES], tail_start, tail_end)
        torn = read_range(self._fds[CHECKPOINTS], cp_start, cp_end)
        pending = self._quarantine(view, tail) if tail else None
        self._truncate(ENTRIES, tail_start, tail_end)
        self._truncate(CHECKPOINTS, cp_start, cp_end)
        tree_end = stored_count(view.state.size) * HASH_SIZE
        self._truncate(TREE, tree_end, os.fstat(self._fds[TREE]).st_size)
        offsets_end = 8 * view.state.size
        self._truncate(OFFSETS, offsets_end, os.fstat(self._fds[OFFSETS]).st_size)
        self._set_view(view)
        if tail or torn:
            self._record_recovery(view, tail, torn, pending)
        assert self._view is not None
        return self._view

    def _initialize(self, scan: _Scan) -> _View:
        """Start an empty log with a signed checkpoint of size 0 (pins origin and key)."""
        key = self._signing_key()
        self._truncate(CHECKPOINTS, *scan.checkpoints_tail)
        os.ftruncate(self._fds[TREE], 0)
        os.ftruncate(self._fds[OFFSETS], 0)
        origin = self._origin or f"securenb.local/audit/{key.key_id[:16]}"
        checkpoint = Checkpoint(origin, 0, root_from_frontier([]))
        note = self._signer_for(origin).sign(checkpoint.text())
        record = note.to_bytes() + b"\n"
        pwrite_all(self._fds[CHECKPOINTS], record, 0)
        datasync(self._fds[CHECKPOINTS])
        state = _State(0, 0, len(record), 0, 1, os.urandom(8))
        view = _View(state, SignedCheckpoint(checkpoint, note), ())
        self._set_view(view)
        # Pin the new log's key and origin from birth (where the user's state folder can
        # be written; a verification reports the key as unpinned otherwise).
        with contextlib.suppress(OSError, AuditError):
            if load_kept(self.directory) is None:
                keep(self.directory, key.public, view.head, utc_now())
        return view

    def _truncate(self, name: str, start: int, end: int) -> None:
        if end > start:
            os.ftruncate(self._fds[name], start)
            os.fsync(self._fds[name])

    def _rebuild_index(self, view: _View) -> _View:
        """Recompute tree.bin and offsets.bin from the entries (they are only indexes).

        The rebuilt tree must have the signed root, or the entries were changed.
        """
        tree_fd, offsets_fd = self._fds[TREE], self._fds[OFFSETS]
        os.ftruncate(tree_fd, 0)
        os.ftruncate(offsets_fd, 0)
        frontier: list[bytes] = []
        size = tree_pos = 0
        end = 0
        for lines in iter_lines(self._fds[ENTRIES], 0, view.state.entries_bytes):
            records = b"".join(extend(frontier, size, leaf_hashes(lines)))
            pwrite_all(tree_fd, records, tree_pos)
            ends = list(itertools.accumulate((len(line) + 1 for line in lines), initial=end))
            _write_offsets(offsets_fd, size, ends[1:])
            tree_pos += len(records)
            size += len(lines)
            end = ends[-1]
        datasync(tree_fd)
        if size != view.state.size or root_from_frontier(frontier) != view.head.checkpoint.root:
            raise AuditError(at(
                self.directory / ENTRIES,
                f"the first {view.state.size} entries do not hash to the root of the last "
                "signed checkpoint; run `securenb audit verify`",
            ))
        return _View(view.state, view.head, tuple(frontier))

    def _offsets_end(self, size: int) -> int | None:
        """Where offsets.bin says entry ``size - 1`` ends (None if it cannot say)."""
        if size == 0:
            return 0
        fd = self._fds.get(OFFSETS)
        raw = os.pread(fd, 8, 8 * (size - 1)) if fd is not None else b""
        return struct.unpack("<Q", raw)[0] if len(raw) == 8 else None

    def _quarantine(self, view: _View, tail: bytes) -> Path:
        """Keep the uncovered bytes (durably: before the log is truncated) for inspection."""
        digest = hashlib.sha256(tail).hexdigest()
        folder = self.directory / QUARANTINE
        if not folder.is_dir():
            private_dir(folder)
            fsync_dir(self.directory)
        path = folder / f"{view.state.size}-{digest[:16]}.jsonl.pending"
        atomic_write_bytes(path, tail)
        return path

    def _record_recovery(
        self, view: _View, tail: bytes, torn: bytes, pending: Path | None
    ) -> None:
        """Append the signed account of what recovery removed, then un-pend its file."""
        digest = hashlib.sha256(tail or torn).hexdigest()
        partial_line = bool(tail) and not tail.endswith(b"\n")
        details: dict[str, Any] = {
            "reason": "entries not covered by a signed checkpoint were removed",
            "tree_size": view.state.size,
            "discarded_entries": tail.count(b"\n") + partial_line,
            "discarded_bytes": len(tail),
            "discarded_checkpoint_bytes": len(torn),
            "quarantine": None,
        }
        if pending is not None:
            final = pending.with_suffix("")
            details["quarantine"] = f"{QUARANTINE}/{final.name}"
        entry = AuditEntry.new(RECOVERY_ACTION, f"sha256:{digest}", details=details,
                               actor=SYSTEM_ACTOR)
        self._commit([entry.canonical()])
        if pending is not None:
            os.replace(pending, pending.with_suffix(""))
            fsync_dir(pending.parent)

    def _finish_pending_quarantine(self) -> None:
        """A quarantine file still pending lost its record in a crash: record it now."""
        folder = self.directory / QUARANTINE
        if not folder.is_dir():
            return
        for pending in sorted(folder.glob("*.pending")):
            data = pending.read_bytes()
            final = pending.with_suffix("")
            entry = AuditEntry.new(
                RECOVERY_ACTION, f"sha256:{hashlib.sha256(data).hexdigest()}",
                details={
                    "reason": "recording an earlier interrupted recovery",
                    "discarded_bytes": len(data),
                    "quarantine": f"{QUARANTINE}/{final.name}",
                },
                actor=SYSTEM_ACTOR,
            )
            self._commit([entry.canonical()])
            os.replace(pending, final)
            fsync_dir(folder)

    # -- reading ---------------------------------------------------------------------

    def head(self) -> SignedCheckpoint:
        """The latest signed checkpoint."""
        with self._reading() as view:
            return view.head

    @property
    def size(self) -> int:
        """Number of committed (checkpointed) entries."""
        return self.head().checkpoint.size

    def read(self, start: int = 0, stop: int | None = None) -> list[AuditRecord]:
        """Entries ``start <= index < stop`` (default: to the end), parsed."""
        with self._reading() as view:
            stop = view.state.size if stop is None else min(stop, view.state.size)
            if not 0 <= start <= stop:
                raise AuditError(f"cannot read entries {start}..{stop} of {view.state.size}")
            fd = self._fds[ENTRIES]
            offset, end = self._start_of(view, start), self._start_of(view, stop)
            out: list[AuditRecord] = []
            for lines in iter_lines(fd, offset, end):
                first = start + len(out)
                out.extend(self._record(first + i, line) for i, line in enumerate(lines))
            return out

    def get(self, index: int) -> AuditRecord:
        records = self.read(index, index + 1)
        if not records:
            raise AuditError(at(self.directory / ENTRIES, f"no entry {index}"))
        return records[0]

    def tail(self, count: int) -> list[AuditRecord]:
        """The last ``count`` entries, read backwards from the end of the file."""
        with self._reading() as view:
            count = min(count, view.state.size)
            if count <= 0:
                return []
            fd, end = self._fds[ENTRIES], view.state.entries_bytes
            pos, data = end, b""
            while pos > 0 and data.count(b"\n") <= count:
                step = min(_TAIL_CHUNK, pos)
                pos -= step
                data = os.pread(fd, step, pos) + data
            lines = data[:-1].split(b"\n")[-count:]
            first = view.state.size - count
            return [self._record(first + i, line) for i, line in enumerate(lines)]

    def _start_of(self, view: _View, index: int) -> int:
        """Byte offset of entry ``index``: from offsets.bin when the line found there has
        the leaf hash tree.bin recorded for it, else by counting lines."""
        fd, end = self._fds[ENTRIES], view.state.entries_bytes
        if index in (0, view.state.size):
            return 0 if index == 0 else end
        if TREE in self._fds:
            start, stop = self._offsets_end(index), self._offsets_end(index + 1)
            if start is not None and stop is not None and 0 < start < stop <= end:
                line = read_range(fd, start, stop)
                store = HashStore(self._fds[TREE], view.state.size, self.directory / TREE)
                if line.endswith(b"\n") and leaf_hash(line[:-1]) == store.read(0, index):
                    return start
        found = find_line_end(fd, 0, end, index)
        assert found is not None
        return found

    def _record(self, index: int, line: bytes) -> AuditRecord:
        source = f"{self.directory / ENTRIES}: entry {index} (line {index + 1})"
        return AuditRecord(index, AuditEntry.from_line(line, source), line)

    def inclusion_proof(self, index: int) -> InclusionProof:
        """Proof that entry ``index`` is in the tree the latest checkpoint signs."""
        with self._reading() as view:
            size = view.state.size
            if not 0 <= index < size:
                raise AuditError(at(self.directory, f"no entry {index} in a log of {size}"))
            store = HashStore(self._fds[TREE], size, self.directory / TREE)
            leaf = store.read(0, index)
            path = inclusion_proof(store, index, size)
            verify_inclusion(leaf, index, size, path, view.head.checkpoint.root)
            line = self.read(index, index + 1)[0].leaf
            if leaf_hash(line) != leaf:
                raise AuditError(at(self.directory / ENTRIES, f"entry {index} does not match "
                                    "its signed leaf hash; run `securenb audit verify`"))
        return InclusionProof(index, size, leaf, tuple(path), view.head.note.to_text(), line)

    def consistency_proof(self, old_size: int, old_root: bytes | None = None) -> list[bytes]:
        """Proof that the latest tree extends the tree of ``old_size`` entries.

        Given ``old_root`` (from a checkpoint you kept), the proof is checked
        before it is returned, so an AuditError here means the log forked.
        """
        with self._reading() as view:
            size = view.state.size
            if not 0 <= old_size <= size:
                raise AuditError(
                    at(self.directory, f"no tree of size {old_size} in a log of {size}")
                )
            store = HashStore(self._fds[TREE], size, self.directory / TREE)
            proof = consistency_proof(store, old_size, size)
            if old_root is not None:
                verify_consistency(old_size, size, old_root, view.head.checkpoint.root, proof)
            return proof


def _write_offsets(fd: int, size: int, ends: list[int]) -> None:
    """Record where entries ``size ..`` end, 8 bytes each (an index; not fsynced)."""
    pwrite_all(fd, struct.pack(f"<{len(ends)}Q", *ends), 8 * size)
