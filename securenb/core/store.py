"""Workspace store: content-addressed blobs plus an SQLite index.

Blobs live at ``blobs/sha256/<2 hex>/<64 hex>`` and are verified against their
name on every read, so an edited blob is caught where it is used. The index
(SQLite in WAL mode) lists artifacts, attestations and runs; every write is one
``BEGIN IMMEDIATE`` transaction, so several kernels, the server and the CLI can
write at once and a crash leaves either the whole record or none of it.
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
import re
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from securenb.core.fsutil import atomic_write_bytes, private_dir
from securenb.errors import IntegrityError, WorkspaceError

SCHEMA_VERSION = 1
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1 << 20

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    started TEXT NOT NULL,
    finished TEXT,
    provenance TEXT
);
CREATE TABLE IF NOT EXISTS artifacts (
    id INTEGER PRIMARY KEY,
    digest TEXT NOT NULL,
    path TEXT NOT NULL,
    media_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    run_id TEXT REFERENCES runs(id),
    created TEXT NOT NULL,
    UNIQUE (digest, path)
);
CREATE INDEX IF NOT EXISTS artifacts_by_digest ON artifacts(digest);
CREATE INDEX IF NOT EXISTS artifacts_by_path ON artifacts(path, id);
CREATE TABLE IF NOT EXISTS attestations (
    envelope TEXT PRIMARY KEY,
    predicate_type TEXT NOT NULL,
    key_id TEXT NOT NULL,
    created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS attestation_subjects (
    envelope TEXT NOT NULL REFERENCES attestations(envelope),
    digest TEXT NOT NULL,
    name TEXT NOT NULL,
    PRIMARY KEY (envelope, digest, name)
);
CREATE INDEX IF NOT EXISTS subjects_by_digest ON attestation_subjects(digest);
"""


def now_rfc3339() -> str:
    """UTC time in RFC 3339 with microseconds, the form used in every record."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def normalize_digest(digest: str) -> str:
    """Accept ``sha256:<hex>`` or ``<hex>`` and return bare lowercase hex (or a prefix)."""
    value = digest.strip().lower()
    if value.startswith("sha256:"):
        value = value[len("sha256:") :]
    if not re.fullmatch(r"[0-9a-f]{4,64}", value):
        raise WorkspaceError(f"{digest!r} is not a sha256 digest (64 hex digits, or a prefix)")
    return value


def file_sha256(path: Path) -> tuple[str, int]:
    """Stream ``path`` through SHA-256; return (hex digest, size)."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


@dataclass(frozen=True)
class Artifact:
    """A file the workspace knows: where it was, what it hashed to, who made it."""

    digest: str
    path: str
    media_type: str
    size: int
    run_id: str | None
    created: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class AttestationRecord:
    """Index entry of a signed envelope stored as a blob."""

    envelope: str
    predicate_type: str
    key_id: str
    created: str
    subjects: tuple[tuple[str, str], ...]  # (name, sha256 hex)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["subjects"] = [{"name": n, "digest": {"sha256": d}} for n, d in self.subjects]
        return data


@dataclass(frozen=True)
class Run:
    """A pipeline or training run; its provenance is an attestation blob digest."""

    id: str
    kind: str
    status: str
    started: str
    finished: str | None
    provenance: str | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class Store:
    """Blobs and index of one ``.securenb/`` folder. Safe to share across processes."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.blob_dir = self.directory / "blobs" / "sha256"
        self.index_path = self.directory / "index.sqlite"
        private_dir(self.directory)
        self._db = self._open()

    # -- index -----------------------------------------------------------------
    def _open(self) -> sqlite3.Connection:
        existed = self.index_path.exists()
        try:
            db = sqlite3.connect(self.index_path, timeout=30.0, isolation_level=None)
            db.execute("PRAGMA busy_timeout = 30000")
            if db.execute("PRAGMA journal_mode = WAL").fetchone()[0].lower() != "wal":
                raise WorkspaceError(f"{self.index_path}: could not switch SQLite to WAL mode")
            db.execute("PRAGMA synchronous = FULL")
            db.execute("PRAGMA foreign_keys = ON")
            if not existed or not self._has_schema(db):
                with _transaction(db):
                    for statement in _SCHEMA.split(";"):
                        if statement.strip():
                            db.execute(statement)
                    db.execute(
                        "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)",
                        (str(SCHEMA_VERSION),),
                    )
            version = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        except sqlite3.OperationalError as exc:
            raise WorkspaceError(f"{self.index_path}: cannot use SQLite index ({exc})") from exc
        except sqlite3.DatabaseError as exc:
            raise WorkspaceError(
                f"{self.index_path}: corrupt SQLite index ({exc}); restore it from a backup"
            ) from exc
        if version is None or int(version[0]) != SCHEMA_VERSION:
            raise WorkspaceError(
                f"{self.index_path}: index schema version {version and version[0]!r} "
                f"is not the supported version {SCHEMA_VERSION}"
            )
        return db

    @staticmethod
    def _has_schema(db: sqlite3.Connection) -> bool:
        row = db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'")
        return row.fetchone() is not None

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        try:
            with _transaction(self._db):
                yield self._db
        except sqlite3.DatabaseError as exc:
            raise WorkspaceError(f"{self.index_path}: index write failed ({exc})") from exc

    def check(self) -> list[str]:
        """Return problems found by SQLite's integrity check and by rehashing every blob."""
        problems = [
            f"{self.index_path}: {row[0]}"
            for row in self._db.execute("PRAGMA integrity_check")
            if row[0] != "ok"
        ]
        for digest in self.blob_digests():
            try:
                self.get_blob(digest)
            except IntegrityError as exc:
                problems.append(str(exc))
        for (envelope,) in self._db.execute("SELECT envelope FROM attestations"):
            if not self.blob_path(envelope).exists():
                problems.append(f"{self.blob_path(envelope)}: blob missing (attestation envelope)")
        return problems

    # -- blobs -----------------------------------------------------------------
    def blob_path(self, digest: str) -> Path:
        if not _HEX64.match(digest):
            raise WorkspaceError(f"{digest!r} is not a full sha256 hex digest")
        return self.blob_dir / digest[:2] / digest

    def put_blob(self, data: bytes) -> str:
        """Store ``data`` under its SHA-256; idempotent and atomic."""
        digest = hashlib.sha256(data).hexdigest()
        path = self.blob_path(digest)
        if not (path.exists() and path.stat().st_size == len(data)):
            atomic_write_bytes(private_dir(path.parent) / path.name, data, mode=0o444)
        return digest

    def get_blob(self, digest: str) -> bytes:
        """Read a blob and check it still hashes to its name."""
        path = self.blob_path(digest)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise IntegrityError(f"{path}: blob missing") from None
        actual = hashlib.sha256(data).hexdigest()
        if actual != digest:
            raise IntegrityError(f"{path}: blob was edited (its sha256 is now {actual})")
        return data

    def blob_digests(self) -> Iterator[str]:
        if not self.blob_dir.exists():
            return
        for sub in sorted(self.blob_dir.iterdir()):
            for entry in sorted(sub.iterdir()):
                if _HEX64.match(entry.name):
                    yield entry.name

    # -- artifacts -------------------------------------------------------------
    def add_artifacts(self, artifacts: Iterable[Artifact]) -> int:
        """Record many artifacts in one transaction; return how many were new."""
        rows = [(a.digest, a.path, a.media_type, a.size, a.run_id, a.created) for a in artifacts]
        with self._write() as db:
            before = db.total_changes
            db.executemany(
                "INSERT OR IGNORE INTO artifacts(digest, path, media_type, size, run_id, created)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )
            return db.total_changes - before

    def find_artifacts(self, digest: str) -> list[Artifact]:
        """Artifacts whose digest is or starts with ``digest`` (newest first)."""
        value = normalize_digest(digest)
        if len(value) == 64:
            cur = self._db.execute(
                f"SELECT {_ARTIFACT_COLS} FROM artifacts WHERE digest = ? ORDER BY id DESC",  # noqa: S608 - constant column list
                (value,),
            )
        else:
            cur = self._db.execute(
                f"SELECT {_ARTIFACT_COLS} FROM artifacts WHERE digest >= ? AND digest < ?"  # noqa: S608 - constant column list
                " ORDER BY id DESC",
                (value, value + "g"),
            )
        return [Artifact(*row) for row in cur]

    def artifacts_at(self, path: str) -> list[Artifact]:
        """Every recorded version of ``path`` (project-relative), newest first."""
        cur = self._db.execute(
            f"SELECT {_ARTIFACT_COLS} FROM artifacts WHERE path = ? ORDER BY id DESC", (path,)  # noqa: S608 - constant column list
        )
        return [Artifact(*row) for row in cur]

    def list_artifacts(self, limit: int = 100) -> list[Artifact]:
        cur = self._db.execute(
            f"SELECT {_ARTIFACT_COLS} FROM artifacts ORDER BY id DESC LIMIT ?", (limit,)  # noqa: S608 - constant column list
        )
        return [Artifact(*row) for row in cur]

    def count_artifacts(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM artifacts").fetchone()[0])

    # -- attestations ------------------------------------------------------------
    def add_attestation(self, record: AttestationRecord) -> None:
        with self._write() as db:
            db.execute(
                "INSERT OR IGNORE INTO attestations VALUES (?, ?, ?, ?)",
                (record.envelope, record.predicate_type, record.key_id, record.created),
            )
            db.executemany(
                "INSERT OR IGNORE INTO attestation_subjects VALUES (?, ?, ?)",
                [(record.envelope, digest, name) for name, digest in record.subjects],
            )

    def attestations_for(
        self, digest: str, predicate_type: str | None = None
    ) -> list[AttestationRecord]:
        """Attestations naming ``digest`` as a subject, newest first."""
        value = normalize_digest(digest)
        query = (
            "SELECT a.envelope, a.predicate_type, a.key_id, a.created FROM attestations a"
            " JOIN attestation_subjects s ON s.envelope = a.envelope WHERE s.digest = ?"
        )
        args: list[str] = [value]
        if predicate_type is not None:
            query += " AND a.predicate_type = ?"
            args.append(predicate_type)
        query += " GROUP BY a.envelope ORDER BY a.created DESC"
        return [self._with_subjects(*row) for row in self._db.execute(query, args)]

    def list_attestations(self, limit: int = 100) -> list[AttestationRecord]:
        cur = self._db.execute(
            "SELECT envelope, predicate_type, key_id, created FROM attestations"
            " ORDER BY created DESC LIMIT ?",
            (limit,),
        )
        return [self._with_subjects(*row) for row in cur]

    def _with_subjects(
        self, envelope: str, predicate_type: str, key_id: str, created: str
    ) -> AttestationRecord:
        subjects = tuple(
            (name, digest)
            for digest, name in self._db.execute(
                "SELECT digest, name FROM attestation_subjects WHERE envelope = ? ORDER BY name",
                (envelope,),
            )
        )
        return AttestationRecord(envelope, predicate_type, key_id, created, subjects)

    # -- runs ----------------------------------------------------------------------
    def start_run(self, run_id: str, kind: str) -> Run:
        run = Run(run_id, kind, "running", now_rfc3339(), None, None)
        with self._write() as db:
            db.execute(
                "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?)",
                (run.id, run.kind, run.status, run.started, None, None),
            )
        return run

    def finish_run(self, run_id: str, status: str, provenance: str | None) -> Run:
        with self._write() as db:
            cur = db.execute(
                "UPDATE runs SET status = ?, finished = ?, provenance = ? WHERE id = ?",
                (status, now_rfc3339(), provenance, run_id),
            )
            if cur.rowcount != 1:
                raise WorkspaceError(f"{self.index_path}: no run with id {run_id!r}")
        return self.get_run(run_id)

    def get_run(self, run_id: str) -> Run:
        row = self._db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise WorkspaceError(f"{self.index_path}: no run with id {run_id!r}")
        return Run(*row)

    def list_runs(self, limit: int = 100) -> list[Run]:
        cur = self._db.execute("SELECT * FROM runs ORDER BY started DESC LIMIT ?", (limit,))
        return [Run(*row) for row in cur]


_ARTIFACT_COLS = "digest, path, media_type, size, run_id, created"


@contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    """``BEGIN IMMEDIATE`` takes the write lock up front: no deadlock on upgrade."""
    for attempt in range(50):
        try:
            db.execute("BEGIN IMMEDIATE")
            break
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == 49:
                raise
            time.sleep(0.01 * (attempt + 1))
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


# ML formats the mimetypes table does not know; display only, never used to pick a parser
_ML_MEDIA_TYPES = {
    ".npy": "application/x-npy",
    ".npz": "application/x-npz",
    ".safetensors": "application/vnd.safetensors",
    ".pt": "application/vnd.pytorch",
    ".pth": "application/vnd.pytorch",
    ".onnx": "application/vnd.onnx",
    ".gguf": "application/vnd.gguf",
    ".parquet": "application/vnd.apache.parquet",
    ".ipynb": "application/x-ipynb+json",
    ".pkl": "application/vnd.python.pickle",
    ".joblib": "application/vnd.joblib",
    ".keras": "application/vnd.keras",
    ".h5": "application/x-hdf5",
}


def media_type_for(path: Path) -> str:
    """A best-effort media type from the name, for display only (never for trust)."""
    known = _ML_MEDIA_TYPES.get(Path(path).suffix.lower())
    if known:
        return known
    guessed, _ = mimetypes.guess_type(os.fspath(path))
    return guessed or "application/octet-stream"
