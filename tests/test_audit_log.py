"""AuditLog: appends, reads, proofs, recovery, on real files."""

from __future__ import annotations

import hashlib
import json
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import ClassVar

import pytest

from securenb.core.audit import (
    AuditEntry,
    AuditLog,
    InclusionProof,
    verify_consistency,
    verify_inclusion_proof,
    verify_log,
)
from securenb.core.audit.merkle import EMPTY_ROOT
from securenb.core.audit.note import open_checkpoint
from securenb.core.audit.storage import (
    CHECKPOINTS,
    ENTRIES,
    OFFSETS,
    QUARANTINE,
    STATE,
    TREE,
)
from securenb.core.canonical import canonical_json
from securenb.core.keys import PrivateKey
from securenb.errors import AuditError, WorkspaceError


@pytest.fixture(scope="module")
def key() -> PrivateKey:
    return PrivateKey.generate()


def entries(n: int, start: int = 0) -> list[AuditEntry]:
    return [
        AuditEntry.new("model.sign", f"sha256:{i:064x}", details={"n": i}, actor="alice")
        for i in range(start, start + n)
    ]


def test_new_log_starts_with_a_signed_empty_checkpoint(tmp_path: Path, key: PrivateKey) -> None:
    with AuditLog(tmp_path / "audit", key, origin="example.com/audit") as log:
        head = log.head()
        assert head.checkpoint.size == 0 and head.checkpoint.root == EMPTY_ROOT
        assert head.checkpoint.origin == "example.com/audit"
        assert open_checkpoint(head.note.to_bytes(), key.public) == head.checkpoint
    assert verify_log(tmp_path / "audit", key.public).entries == 0


def test_append_is_canonical_json_one_per_line(tmp_path: Path, key: PrivateKey) -> None:
    when = datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=timezone(timedelta(hours=2)))
    with AuditLog(tmp_path, key) as log:
        receipt = log.append("dataset.read", "sha256:" + "ab" * 32,
                             details={"path": "data/x.csv", "rows": 3, "é": "\n"},
                             actor="bob", time=when)
    assert (receipt.index, receipt.count, receipt.head.checkpoint.size) == (0, 1, 1)
    line = (tmp_path / ENTRIES).read_bytes()
    expected = {"time": "2025-01-02T01:04:05.678901Z", "actor": "bob", "action": "dataset.read",
                "subject": "sha256:" + "ab" * 32,
                "details": {"path": "data/x.csv", "rows": 3, "é": "\n"}}
    assert line == canonical_json(expected) + b"\n"
    assert line.count(b"\n") == 1


def test_append_many_is_one_batch_and_one_checkpoint(tmp_path: Path, key: PrivateKey) -> None:
    with AuditLog(tmp_path, key) as log:
        first = log.append_many(entries(10))
        second = log.append_many(entries(5, 10))
        assert (first.index, first.count, first.head.checkpoint.size) == (0, 10, 10)
        assert (second.index, second.count, second.head.checkpoint.size) == (10, 5, 15)
        assert [r.entry.details["n"] for r in log.read()] == list(range(15))
    report = verify_log(tmp_path, key.public)
    assert (report.entries, report.checkpoints) == (15, 3)


def test_reads(tmp_path: Path, key: PrivateKey) -> None:
    with AuditLog(tmp_path, key) as log:
        log.append_many(entries(30))
        assert log.size == 30
        assert [r.index for r in log.tail(3)] == [27, 28, 29]
        assert [r.entry.details["n"] for r in log.tail(3)] == [27, 28, 29]
        assert len(log.tail(100)) == 30
        assert log.tail(0) == []
        assert log.get(7).entry.subject == f"sha256:{7:064x}"
        assert [r.index for r in log.read(5, 8)] == [5, 6, 7]
        assert log.read(29, 100)[0].index == 29
        with pytest.raises(AuditError, match="no entry 30"):
            log.get(30)
        with pytest.raises(AuditError):
            log.read(-1, 2)


def test_read_only_log(tmp_path: Path, key: PrivateKey) -> None:
    with AuditLog(tmp_path, key) as log:
        log.append_many(entries(4))
    with AuditLog(tmp_path) as reader:
        assert reader.size == 4
        assert reader.tail(1)[0].index == 3
        with pytest.raises(AuditError, match="read-only"):
            reader.append("x", "y")
    with pytest.raises(WorkspaceError, match="no audit log here"):
        AuditLog(tmp_path / "missing")


def test_signer_callable_is_only_called_to_write(tmp_path: Path, key: PrivateKey) -> None:
    calls = []

    def unlock() -> PrivateKey:
        calls.append(1)
        return key

    with AuditLog(tmp_path, key) as log:
        log.append_many(entries(2))
    with AuditLog(tmp_path, unlock) as log:
        assert log.size == 2 and calls == []
        log.append("x", "y")
        assert calls == [1]
        log.append("x", "y")
        assert calls == [1]


def test_inclusion_proofs_for_every_entry(tmp_path: Path, key: PrivateKey) -> None:
    with AuditLog(tmp_path, key) as log:
        for batch in (1, 2, 5, 13):
            log.append_many(entries(batch))
        for index in range(21):
            proof = log.inclusion_proof(index)
            again = InclusionProof.from_json(json.loads(json.dumps(proof.to_json())))
            assert again == proof
            checkpoint = verify_inclusion_proof(again, key.public)
            assert checkpoint.size == 21
        with pytest.raises(AuditError, match="no entry 21"):
            log.inclusion_proof(21)


def test_inclusion_proof_rejects_changes(tmp_path: Path, key: PrivateKey) -> None:
    with AuditLog(tmp_path, key) as log:
        log.append_many(entries(9))
        proof = log.inclusion_proof(4).to_json()
    edited = dict(proof, entry=proof["entry"].replace("alice", "mallory"))
    with pytest.raises(AuditError, match="does not hash to its leaf hash"):
        verify_inclusion_proof(InclusionProof.from_json(edited), key.public)
    moved = dict(proof, index=5)
    with pytest.raises(AuditError):
        verify_inclusion_proof(InclusionProof.from_json(moved), key.public)
    with pytest.raises(AuditError, match="no signature"):
        verify_inclusion_proof(InclusionProof.from_json(proof), PrivateKey.generate().public)
    with pytest.raises(AuditError, match="tree_size"):
        InclusionProof.from_json(dict(proof, tree_size="9"))


def test_consistency_proof_between_heads(tmp_path: Path, key: PrivateKey) -> None:
    with AuditLog(tmp_path, key) as log:
        log.append_many(entries(6))
        old = log.head().checkpoint
        log.append_many(entries(11, 6))
        new = log.head().checkpoint
        proof = log.consistency_proof(old.size, old.root)
        verify_consistency(old.size, new.size, old.root, new.root, proof)
        with pytest.raises(AuditError, match="old root"):
            log.consistency_proof(old.size, new.root)
        with pytest.raises(AuditError, match="no tree of size"):
            log.consistency_proof(18)


def test_entry_validation(tmp_path: Path, key: PrivateKey) -> None:
    with AuditLog(tmp_path, key) as log:
        with pytest.raises(AuditError, match="no time zone"):
            log.append("a", "b", time=datetime(2025, 1, 1))
        with pytest.raises(AuditError, match="secret"):
            log.append("a", "b", details={"nested": [{"password": "hunter2"}]})
        with pytest.raises(AuditError, match="action must be a non-empty string"):
            log.append("", "b")
        with pytest.raises(AuditError, match="not JSON"):
            log.append("a", "b", details={"x": float("nan")})
        with pytest.raises(AuditError, match="no entries"):
            log.append_many([])
        assert log.size == 0
    with pytest.raises(AuditError, match="RFC 3339"):
        AuditEntry(time="yesterday", actor="a", action="b", subject="c")


def test_concurrent_threads_share_batches(tmp_path: Path, key: PrivateKey) -> None:
    with AuditLog(tmp_path, key) as log:
        receipts = []

        def work(worker: int) -> None:
            for i in range(40):
                receipts.append(log.append("t", f"w{worker}-{i}", actor="t"))

        threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert log.size == 320
        assert sorted(r.index for r in receipts) == list(range(320))
        for r in receipts:
            assert r.head.checkpoint.size > r.index
        assert {log.get(r.index).entry.subject for r in receipts} == {
            f"w{w}-{i}" for w in range(8) for i in range(40)
        }
    report = verify_log(tmp_path, key.public)
    assert report.entries == 320
    assert report.checkpoints < 320, "concurrent appends must share checkpoints"


def test_receipt_names_the_entry(tmp_path: Path, key: PrivateKey) -> None:
    with AuditLog(tmp_path, key) as log:
        r = log.append("one", "s1")
        log.append("two", "s2")
        assert log.get(r.index).entry.action == "one"
        assert r.head.checkpoint.size == r.index + 1


def test_wrong_key_cannot_append(tmp_path: Path, key: PrivateKey) -> None:
    with AuditLog(tmp_path, key) as log:
        log.append_many(entries(2))
    with pytest.raises(AuditError, match="not signed by this log's key"):
        AuditLog(tmp_path, PrivateKey.generate())


def test_origin_mismatch_and_bad_origin(tmp_path: Path, key: PrivateKey) -> None:
    with pytest.raises(AuditError, match="key name"):
        AuditLog(tmp_path, key, origin="has space")
    with AuditLog(tmp_path, key, origin="example.com/a") as log:
        log.append("x", "y")
    with pytest.raises(AuditError, match=r"this log is 'example\.com/a', not 'example\.com/b'"):
        AuditLog(tmp_path, key, origin="example.com/b")


def test_lost_state_and_tree_are_rebuilt(tmp_path: Path, key: PrivateKey) -> None:
    with AuditLog(tmp_path, key) as log:
        log.append_many(entries(37))
    (tmp_path / STATE).unlink()
    (tmp_path / TREE).write_bytes(b"\x00" * 64)
    with AuditLog(tmp_path, key) as log:
        log.append("after", "rebuild")
        assert log.size == 38
        verify_inclusion_proof(log.inclusion_proof(20), key.public)
    verify_log(tmp_path, key.public)
    assert not (tmp_path / QUARANTINE).exists()


def test_offsets_index_is_checked_and_rebuilt(tmp_path: Path, key: PrivateKey) -> None:
    with AuditLog(tmp_path, key) as log:
        log.append_many(entries(50))
    offsets = tmp_path / OFFSETS
    offsets.write_bytes(offsets.read_bytes()[:80] + b"\x07" * 8 + offsets.read_bytes()[88:])
    with AuditLog(tmp_path) as reader:  # a wrong offset is never believed
        assert reader.get(11).entry.details["n"] == 11
        assert [r.index for r in reader.read(10, 13)] == [10, 11, 12]
        assert reader.inclusion_proof(11).entry == reader.get(11).leaf
    offsets.unlink()
    with AuditLog(tmp_path, key) as log:  # the writer rebuilds it
        assert offsets.stat().st_size == 8 * 50
        assert log.get(49).entry.details["n"] == 49
        assert log.get(0).entry.details["n"] == 0


def test_uncovered_tail_is_quarantined_and_recorded(tmp_path: Path, key: PrivateKey) -> None:
    with AuditLog(tmp_path, key) as log:
        log.append_many(entries(5))
    stray = canonical_json(entries(1, 99)[0].to_json()) + b"\n" + b'{"partial'
    with (tmp_path / ENTRIES).open("ab") as fh:
        fh.write(stray)
    with AuditLog(tmp_path, key) as log:
        receipt = log.append("next", "entry")
        assert receipt.index == 6
        recovery = log.get(5).entry
        assert recovery.action == "audit.recovered" and recovery.actor == "securenb"
        assert recovery.details["discarded_entries"] == 2
        assert recovery.details["discarded_bytes"] == len(stray)
        quarantined = tmp_path / recovery.details["quarantine"]
        assert quarantined.read_bytes() == stray
        assert recovery.subject == "sha256:" + hashlib.sha256(stray).hexdigest()
    assert verify_log(tmp_path, key.public).entries == 7
    assert list((tmp_path / QUARANTINE).glob("*.pending")) == []


def test_torn_checkpoint_is_discarded(tmp_path: Path, key: PrivateKey) -> None:
    with AuditLog(tmp_path, key) as log:
        log.append_many(entries(3))
        good = (tmp_path / CHECKPOINTS).read_bytes()
        log.append_many(entries(2, 3))
    data = (tmp_path / CHECKPOINTS).read_bytes()
    (tmp_path / CHECKPOINTS).write_bytes(data[: len(good) + 30])  # cut the last one short
    with AuditLog(tmp_path) as reader:
        assert reader.size == 3  # reading ignores what no checkpoint covers
    with AuditLog(tmp_path, key) as log:  # a writer removes it, and records that it did
        assert log.size == 3 + 1
        recovery = log.get(3).entry
        assert recovery.details["discarded_entries"] == 2
        assert recovery.details["discarded_checkpoint_bytes"] == 30
    verify_log(tmp_path, key.public)


def test_pending_quarantine_from_an_interrupted_recovery_is_recorded(
    tmp_path: Path, key: PrivateKey
) -> None:
    with AuditLog(tmp_path, key) as log:
        log.append_many(entries(2))
    pending = tmp_path / QUARANTINE / "2-0123456789abcdef.jsonl.pending"
    pending.parent.mkdir()
    pending.write_bytes(b"lost\n")
    with AuditLog(tmp_path, key) as log:
        log.append("x", "y")
        recovery = log.get(2).entry
        assert recovery.details["reason"] == "recording an earlier interrupted recovery"
        assert log.size == 4
    assert not pending.exists() and pending.with_suffix("").exists()


def test_entries_without_any_checkpoint_are_refused(tmp_path: Path, key: PrivateKey) -> None:
    with AuditLog(tmp_path, key) as log:
        log.append_many(entries(2))
    (tmp_path / CHECKPOINTS).write_bytes(b"")
    with pytest.raises(AuditError, match="no signed checkpoint"):
        AuditLog(tmp_path, key)


def test_truncated_entries_are_refused(tmp_path: Path, key: PrivateKey) -> None:
    with AuditLog(tmp_path, key) as log:
        log.append_many(entries(4))
    data = (tmp_path / ENTRIES).read_bytes()
    (tmp_path / ENTRIES).write_bytes(data[: data.index(b"\n") + 1])
    with pytest.raises(AuditError, match="truncated"):
        AuditLog(tmp_path, key)


def test_edited_entries_are_refused_when_the_tree_must_be_rebuilt(
    tmp_path: Path, key: PrivateKey
) -> None:
    with AuditLog(tmp_path, key) as log:
        log.append_many(entries(4))
    path = tmp_path / ENTRIES
    path.write_bytes(path.read_bytes().replace(b"alice", b"alicx", 1))
    (tmp_path / TREE).unlink()
    (tmp_path / STATE).unlink()
    with pytest.raises(AuditError, match="do not hash"):
        AuditLog(tmp_path, key)


def test_closed_log(tmp_path: Path, key: PrivateKey) -> None:
    log = AuditLog(tmp_path, key)
    log.close()
    with pytest.raises(AuditError, match="closed"):
        log.append("x", "y")


def test_entries_read_back_are_validated() -> None:
    good = AuditEntry.new("a", "b", actor="c")
    assert AuditEntry.from_line(good.canonical()) == good
    with pytest.raises(AuditError, match="line 3: not JSON"):
        AuditEntry.from_line(b"{oops", "line 3")
    with pytest.raises(AuditError, match="exactly"):
        AuditEntry.from_json({**good.to_json(), "extra": 1})
    with pytest.raises(AuditError, match="exactly"):
        AuditEntry.from_json({k: v for k, v in good.to_json().items() if k != "actor"})
    with pytest.raises(AuditError, match="x: audit entry subject"):
        AuditEntry.from_json({**good.to_json(), "subject": 5}, "x")


class FlakyKey(PrivateKey):
    """Fails its first signature: a commit that breaks after its entries are on disk."""

    failures: ClassVar[list[OSError]] = [OSError("signing device unplugged")]

    def sign(self, data: bytes) -> bytes:
        if self.failures:
            raise self.failures.pop()
        return super().sign(data)


def test_failed_commit_leaves_nothing_behind(tmp_path: Path, key: PrivateKey) -> None:
    with AuditLog(tmp_path, key) as log:
        log.append_many(entries(3))
    with AuditLog(tmp_path, lambda: FlakyKey(key.key)) as log:
        with pytest.raises(OSError, match="unplugged"):
            log.append("lost", "x")
        assert log.size == 3
        assert log.append("kept", "y").index == 3
        assert [r.entry.action for r in log.read(3)] == ["kept"]
    assert verify_log(tmp_path, key.public).entries == 4
    assert not (tmp_path / QUARANTINE).exists()
