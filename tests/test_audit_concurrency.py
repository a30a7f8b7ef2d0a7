"""Several processes appending at once, and writers killed (SIGKILL) mid-batch."""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import threading
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from securenb.core.audit import AuditEntry, AuditLog, AuditVerificationError, verify_log
from securenb.core.audit.note import NoteSigner, SignedNote
from securenb.core.keys import PrivateKey

CTX = multiprocessing.get_context("fork")


@pytest.fixture(scope="module")
def key() -> PrivateKey:
    return PrivateKey.generate()


def pem(key: PrivateKey) -> bytes:
    return key.key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load(pem_bytes: bytes) -> PrivateKey:
    loaded = serialization.load_pem_private_key(pem_bytes, password=None)
    return PrivateKey(loaded)  # type: ignore[arg-type]


def writer(directory: str, pem_bytes: bytes, worker: int) -> None:
    """One process: 4 threads of single appends, then batches."""
    with AuditLog(directory, load(pem_bytes)) as log:

        def singles(thread: int) -> None:
            for i in range(25):
                log.append("test.single", f"p{worker}-t{thread}-{i}", actor=f"w{worker}")

        threads = [threading.Thread(target=singles, args=(t,)) for t in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for b in range(5):
            log.append_many(
                AuditEntry.new("test.batch", f"p{worker}-b{b}-{i}", actor=f"w{worker}")
                for i in range(20)
            )


def test_processes_appending_at_once(tmp_path: Path, key: PrivateKey) -> None:
    directory = tmp_path / "audit"
    AuditLog(directory, key).close()
    procs = [CTX.Process(target=writer, args=(str(directory), pem(key), w)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    report = verify_log(directory, key.public)
    assert report.entries == 4 * (100 + 100)
    with AuditLog(directory) as log:
        subjects = [r.entry.subject for r in log.read()]
    expected = {f"p{w}-t{t}-{i}" for w in range(4) for t in range(4) for i in range(25)}
    expected |= {f"p{w}-b{b}-{i}" for w in range(4) for b in range(5) for i in range(20)}
    assert sorted(subjects) == sorted(expected)


def acked(path: Path) -> list[str]:
    """Subjects the killed writer reported as acknowledged (complete lines only)."""
    if not path.exists():
        return []
    data = path.read_text()
    return [s for line in data.split("\n")[: data.count("\n")] for s in line.split(",") if s]


def stall_before_checkpoint(ready: str) -> None:
    """Make the next checkpoint signature hang, after the batch's entries are on disk."""

    def sign(self: NoteSigner, text: str) -> SignedNote:
        Path(ready).write_text("stalled")
        time.sleep(600)
        raise AssertionError("not reached")

    NoteSigner.sign = sign  # type: ignore[method-assign]


def stalled_writer(directory: str, pem_bytes: bytes, ack_file: str, ready: str) -> None:
    with AuditLog(directory, load(pem_bytes)) as log:
        receipt = log.append_many(AuditEntry.new("ok", f"ok-{i}") for i in range(3))
        with open(ack_file, "a") as fh:
            fh.write(",".join(f"ok-{i}" for i in range(receipt.count)) + "\n")
        stall_before_checkpoint(ready)
        log.append_many(AuditEntry.new("lost", f"lost-{i}") for i in range(4))


def test_kill_between_entries_and_checkpoint(tmp_path: Path, key: PrivateKey) -> None:
    directory, ack_file, ready = tmp_path / "audit", tmp_path / "acked", tmp_path / "ready"
    AuditLog(directory, key).close()
    proc = CTX.Process(target=stalled_writer,
                       args=(str(directory), pem(key), str(ack_file), str(ready)))
    proc.start()
    deadline = time.monotonic() + 60
    while not ready.exists():
        assert time.monotonic() < deadline and proc.is_alive()
        time.sleep(0.01)
    assert proc.pid is not None
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()

    # Before recovery, the signed part is intact and only the uncovered tail is reported.
    with pytest.raises(AuditVerificationError) as info:
        verify_log(directory, key.public)
    assert len(info.value.report.problems) == 1
    assert "entries 3..6 (lines 4..7) are not covered" in info.value.report.problems[0]

    with AuditLog(directory, key) as log:  # the next writer recovers
        records = log.read()
        assert [r.entry.subject for r in records[:3]] == acked(ack_file)
        recovery = records[3].entry
        assert recovery.action == "audit.recovered"
        assert recovery.details["discarded_entries"] == 4
        assert b"lost-3" in (directory / recovery.details["quarantine"]).read_bytes()
        assert len(records) == 4
    verify_log(directory, key.public)


def busy_writer(directory: str, pem_bytes: bytes, ack_file: str, seed: int) -> None:
    rng = random.Random(seed)
    with AuditLog(directory, load(pem_bytes)) as log, open(ack_file, "a") as fh:
        lock = threading.Lock()

        def work(thread: int) -> None:
            n = 0
            while True:
                size = rng.choice((1, 1, 3, 50))
                subjects = [f"s{seed}-t{thread}-{n + i}" for i in range(size)]
                if size == 1:
                    log.append("busy", subjects[0])
                else:
                    log.append_many(AuditEntry.new("busy", s) for s in subjects)
                n += size
                with lock:
                    fh.write(",".join(subjects) + "\n")
                    fh.flush()

        threads = [threading.Thread(target=work, args=(t,), daemon=True) for t in range(3)]
        for t in threads:
            t.start()
        time.sleep(600)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_kill_at_a_random_moment(tmp_path: Path, key: PrivateKey, seed: int) -> None:
    directory, ack_file = tmp_path / "audit", tmp_path / "acked"
    AuditLog(directory, key).close()
    for round_ in range(2):
        proc = CTX.Process(target=busy_writer,
                           args=(str(directory), pem(key), str(ack_file), seed * 10 + round_))
        proc.start()
        deadline = time.monotonic() + 60
        while len(acked(ack_file)) < 20 * (round_ + 1):
            assert time.monotonic() < deadline and proc.is_alive()
            time.sleep(0.01)
        time.sleep(random.Random(seed).uniform(0, 0.2))
        assert proc.pid is not None
        os.kill(proc.pid, signal.SIGKILL)
        proc.join()
        with AuditLog(directory, key) as log:
            present = {r.entry.subject for r in log.read()}
        missing = set(acked(ack_file)) - present
        assert not missing, f"acknowledged entries lost: {sorted(missing)[:5]}"
        verify_log(directory, key.public)
