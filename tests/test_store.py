"""Workspace store: blobs, index, concurrency, crashes and corruption."""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from securenb.core.store import Artifact, AttestationRecord, Store, now_rfc3339
from securenb.errors import IntegrityError, WorkspaceError


def _artifact(i: int, run: str | None = None) -> Artifact:
    digest = hashlib.sha256(f"artifact-{i}".encode()).hexdigest()
    return Artifact(digest, f"models/m{i}.bin", "application/octet-stream", i, run, now_rfc3339())


def test_blob_round_trip_and_dedup(tmp_path: Path) -> None:
    store = Store(tmp_path)
    digest = store.put_blob(b"hello")
    assert digest == hashlib.sha256(b"hello").hexdigest()
    assert store.put_blob(b"hello") == digest
    assert store.get_blob(digest) == b"hello"
    assert list(store.blob_digests()) == [digest]
    assert oct(store.blob_path(digest).stat().st_mode & 0o777) == "0o444"


def test_edited_blob_is_named(tmp_path: Path) -> None:
    store = Store(tmp_path)
    digest = store.put_blob(b"weights")
    path = store.blob_path(digest)
    path.chmod(0o644)
    path.write_bytes(b"weightz")
    with pytest.raises(IntegrityError, match=rf"{digest}: blob was edited"):
        store.get_blob(digest)
    assert any("blob was edited" in p for p in store.check())


def test_missing_blob_is_named(tmp_path: Path) -> None:
    store = Store(tmp_path)
    digest = store.put_blob(b"x")
    store.blob_path(digest).unlink()
    with pytest.raises(IntegrityError, match="blob missing"):
        store.get_blob(digest)


def test_artifacts_by_digest_prefix_and_path(tmp_path: Path) -> None:
    store = Store(tmp_path)
    arts = [_artifact(i) for i in range(100)]
    assert store.add_artifacts(arts) == 100
    assert store.add_artifacts(arts[:10]) == 0  # idempotent
    target = arts[42]
    assert store.find_artifacts(target.digest) == [target]
    assert store.find_artifacts("sha256:" + target.digest) == [target]
    assert target in store.find_artifacts(target.digest[:12])
    assert store.artifacts_at("models/m42.bin") == [target]
    assert store.count_artifacts() == 100
    with pytest.raises(WorkspaceError, match="not a sha256 digest"):
        store.find_artifacts("not-hex!")


def test_attestations_indexed_by_subject_and_type(tmp_path: Path) -> None:
    store = Store(tmp_path)
    env = store.put_blob(b"{}")
    subj = hashlib.sha256(b"model").hexdigest()
    rec = AttestationRecord(env, "https://x/v1", "k" * 64, now_rfc3339(), (("model", subj),))
    store.add_attestation(rec)
    assert store.attestations_for(subj) == [rec]
    assert store.attestations_for(subj, "https://x/v1") == [rec]
    assert store.attestations_for(subj, "https://other/v1") == []


def test_runs_lifecycle(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.start_run("r1", "papermill")
    run = store.finish_run("r1", "succeeded", "a" * 64)
    assert (run.status, run.provenance) == ("succeeded", "a" * 64)
    assert run.finished is not None
    with pytest.raises(WorkspaceError, match="no run with id 'nope'"):
        store.finish_run("nope", "failed", None)


def _writer(directory: str, start: int, count: int) -> None:
    store = Store(Path(directory))
    for i in range(start, start + count):
        store.add_artifacts([_artifact(i)])
        store.put_blob(f"blob-{i}".encode())


def test_parallel_writers_do_not_corrupt(tmp_path: Path) -> None:
    Store(tmp_path).close()
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), n * 150, 150)) for n in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    store = Store(tmp_path)
    assert store.count_artifacts() == 600
    assert len(list(store.blob_digests())) == 600
    assert store.check() == []


def _slow_transaction(directory: str) -> None:
    db = sqlite3.connect(Path(directory) / "index.sqlite", isolation_level=None)
    db.execute("BEGIN IMMEDIATE")
    for i in range(1000):
        a = _artifact(10_000 + i)
        db.execute(
            "INSERT INTO artifacts(digest, path, media_type, size, run_id, created)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (a.digest, a.path, a.media_type, a.size, a.run_id, a.created),
        )
    time.sleep(60)  # killed here, before COMMIT


def _blob_loop(directory: str) -> None:
    store = Store(Path(directory))
    i = 0
    while True:
        store.put_blob(os.urandom(64) * (1 + i % 5000))
        i += 1


def test_crash_mid_write_leaves_no_partial_record(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.add_artifacts([_artifact(1)])
    ctx = mp.get_context("spawn")
    for target in (_slow_transaction, _blob_loop):
        proc = ctx.Process(target=target, args=(str(tmp_path),))
        proc.start()
        time.sleep(2.0)
        assert proc.pid is not None
        os.kill(proc.pid, signal.SIGKILL)
        proc.join()
    reopened = Store(tmp_path)
    assert reopened.count_artifacts() == 1  # the killed transaction left nothing
    assert reopened.check() == []  # no half-written blob passes for a good one


def test_corrupt_index_is_named(tmp_path: Path) -> None:
    Store(tmp_path).close()
    for suffix in ("-wal", "-shm"):
        (tmp_path / f"index.sqlite{suffix}").unlink(missing_ok=True)
    (tmp_path / "index.sqlite").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(WorkspaceError, match=r"index\.sqlite: corrupt SQLite index"):
        Store(tmp_path)


def test_wrong_schema_version_is_named(tmp_path: Path) -> None:
    Store(tmp_path).close()
    db = sqlite3.connect(tmp_path / "index.sqlite")
    db.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    db.commit()
    db.close()
    with pytest.raises(WorkspaceError, match="schema version '99'"):
        Store(tmp_path)
