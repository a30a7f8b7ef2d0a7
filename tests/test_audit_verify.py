"""Offline verification catches every kind of tampering, with messages that name it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from securenb.core.audit import AuditEntry, AuditLog, AuditVerificationError, verify_log
from securenb.core.audit.merkle import leaf_hash
from securenb.core.audit.note import Checkpoint, sign_checkpoint
from securenb.core.audit.storage import CHECKPOINTS, ENTRIES, LOCK, STATE, TREE, split_checkpoints
from securenb.core.keys import PrivateKey
from securenb.errors import AuditError, WorkspaceError

BATCHES = (3, 4, 5, 1, 7)  # 20 entries; checkpoints #0 (size 0) to #5 (size 20)
SIZES = (0, 3, 7, 12, 13, 20)


@pytest.fixture(scope="module")
def key() -> PrivateKey:
    return PrivateKey.generate()


@pytest.fixture
def log_dir(tmp_path: Path, key: PrivateKey) -> Path:
    directory = tmp_path / "audit"
    with AuditLog(directory, key) as log:
        n = 0
        for size in BATCHES:
            log.append_many(
                AuditEntry.new("model.sign", f"sha256:{i:064x}", details={"n": i}, actor="ci")
                for i in range(n, n + size)
            )
            n += size
    return directory


def lines(directory: Path) -> list[bytes]:
    return (directory / ENTRIES).read_bytes().splitlines(keepends=True)


def write_lines(directory: Path, new: list[bytes]) -> None:
    (directory / ENTRIES).write_bytes(b"".join(new))


def records(directory: Path) -> list[bytes]:
    data = (directory / CHECKPOINTS).read_bytes()
    ranges, _ = split_checkpoints(data)
    return [data[a:b] for a, b in ranges]


def write_records(directory: Path, new: list[bytes]) -> None:
    (directory / CHECKPOINTS).write_bytes(b"".join(new))


def problems(directory: Path, key: PrivateKey, trusted: Checkpoint | None = None) -> str:
    with pytest.raises(AuditVerificationError) as info:
        verify_log(directory, key.public, trusted=trusted)
    assert info.value.exit_code == 1
    assert info.value.report.problems and not info.value.report.ok
    return str(info.value)


def test_intact_log_verifies(log_dir: Path, key: PrivateKey) -> None:
    report = verify_log(log_dir, key.public)
    assert report.ok and report.entries == 20 and report.checkpoints == 6
    assert report.head is not None and report.head.size == 20
    assert report.to_json()["ok"] is True and report.to_json()["tree_size"] == 20


def test_verification_needs_only_entries_and_checkpoints(log_dir: Path, key: PrivateKey) -> None:
    for name in (TREE, STATE, LOCK):
        (log_dir / name).unlink()
    assert verify_log(log_dir, key.public).entries == 20


def test_edited_entry(log_dir: Path, key: PrivateKey) -> None:
    entries = lines(log_dir)
    entries[6] = entries[6].replace(b'"actor":"ci"', b'"actor":"cj"')
    write_lines(log_dir, entries)
    message = problems(log_dir, key)
    assert "entry 6 (line 7) was edited" in message
    assert "checkpoint #3 (size 12) does not match the entries" in message
    assert "checkpoint #2 (size 7) does not match" in message  # 6 < 7: first signed cover
    assert "checkpoint #1 (size 3) does not match" not in message


def test_edited_entry_with_a_rebuilt_index_is_still_caught(
    log_dir: Path, key: PrivateKey
) -> None:
    """An attacker who also rewrites tree.bin only loses us the pinpointing."""
    entries = lines(log_dir)
    entries[15] = entries[15].replace(b'"actor":"ci"', b'"actor":"xx"')
    write_lines(log_dir, entries)
    (log_dir / TREE).unlink()
    message = problems(log_dir, key)
    assert f"entries 13..19 of {ENTRIES} do not hash to its root" in message
    assert "checkpoint #5 (size 20)" in message


def test_removed_entry(log_dir: Path, key: PrivateKey) -> None:
    entries = lines(log_dir)
    del entries[4]
    write_lines(log_dir, entries)
    message = problems(log_dir, key)
    assert "entry 4 (line 5) was removed" in message
    assert "truncated: holds 19 entries but checkpoint #5 signs 20" in message


def test_swapped_entries(log_dir: Path, key: PrivateKey) -> None:
    entries = lines(log_dir)
    entries[2], entries[9] = entries[9], entries[2]
    write_lines(log_dir, entries)
    message = problems(log_dir, key)
    assert "entry 2 (line 3) was swapped with entry 9: entries were reordered" in message


def test_truncated_log(log_dir: Path, key: PrivateKey) -> None:
    write_lines(log_dir, lines(log_dir)[:17])
    message = problems(log_dir, key)
    assert "truncated: holds 17 entries but checkpoint #5 signs 20; entries 17..19 are missing" \
        in message


def test_cut_short_last_line(log_dir: Path, key: PrivateKey) -> None:
    entries = lines(log_dir)
    entries[-1] = entries[-1][:-10]
    write_lines(log_dir, entries)
    message = problems(log_dir, key)
    assert "entry 19 (line 20) is cut short" in message


def test_line_appended_by_hand(log_dir: Path, key: PrivateKey) -> None:
    entries = lines(log_dir)
    write_lines(log_dir, [*entries, entries[0]])
    message = problems(log_dir, key)
    assert "entries 20..20 (lines 21..21) are not covered by any signed checkpoint" in message


def test_checkpoint_that_does_not_extend_the_previous(log_dir: Path, key: PrivateKey) -> None:
    """A validly signed fork: same key, size 12, another history."""
    cps = records(log_dir)
    fork = Checkpoint(
        "securenb.local/audit/" + key.key_id[:16], 12, leaf_hash(b"another history")
    )
    cps[3] = sign_checkpoint(fork, key).to_bytes() + b"\n"
    write_records(log_dir, cps)
    message = problems(log_dir, key)
    assert re.search(r"checkpoint #3 \(size 12\) does not extend checkpoint #2 \(size 7\).*"
                     r"the log forked", message)
    assert "entry" not in message.split("checkpoint #3")[0]  # entries are not blamed


def test_last_checkpoint_replaced_by_a_fork(log_dir: Path, key: PrivateKey) -> None:
    cps = records(log_dir)
    cps[5] = sign_checkpoint(Checkpoint(
        "securenb.local/audit/" + key.key_id[:16], 20, leaf_hash(b"fork")), key).to_bytes() + b"\n"
    write_records(log_dir, cps)
    message = problems(log_dir, key)
    assert "checkpoint #5 (size 20) does not match the entries" in message
    assert "does not extend checkpoint #4 (size 13)" in message
    assert "(line" not in message  # no entry is blamed


def test_checkpoint_that_shrinks(log_dir: Path, key: PrivateKey) -> None:
    cps = records(log_dir)
    cps[3], cps[4] = cps[4], cps[3]
    write_records(log_dir, cps)
    message = problems(log_dir, key)
    assert "checkpoint #4 (size 12) does not extend checkpoint #3 (size 13): the log shrank" \
        in message


def test_same_size_different_root(log_dir: Path, key: PrivateKey) -> None:
    cps = records(log_dir)
    twin = sign_checkpoint(Checkpoint(
        "securenb.local/audit/" + key.key_id[:16], 20, leaf_hash(b"twin")), key)
    write_records(log_dir, [*cps, twin.to_bytes() + b"\n"])
    message = problems(log_dir, key)
    assert "checkpoint #6 (size 20) does not extend checkpoint #5: same size, different root" \
        in message


def test_corrupted_signature(log_dir: Path, key: PrivateKey) -> None:
    cps = records(log_dir)
    text = cps[2].decode()
    cut = text.rindex(" ") + 40  # inside the signature bytes, past the key hash
    swapped = "A" if text[cut] != "A" else "B"
    cps[2] = (text[:cut] + swapped + text[cut + 1:]).encode()
    write_records(log_dir, cps)
    message = problems(log_dir, key)
    assert re.search(r"checkpoint #2: signature by .* does not verify", message)


def test_wrong_public_key(log_dir: Path) -> None:
    other = PrivateKey.generate()
    message = problems(log_dir, other)
    assert f"checkpoint #0: no signature by key {other.key_id[:16]}" in message
    assert "not covered by any signed checkpoint" in message


def test_torn_checkpoint(log_dir: Path, key: PrivateKey) -> None:
    data = (log_dir / CHECKPOINTS).read_bytes()
    (log_dir / CHECKPOINTS).write_bytes(data[:-20])
    message = problems(log_dir, key)
    assert "after the last checkpoint are not a complete checkpoint" in message
    assert "entries 13..19 (lines 14..20) are not covered" in message


def test_missing_checkpoints(log_dir: Path, key: PrivateKey) -> None:
    (log_dir / CHECKPOINTS).unlink()
    message = problems(log_dir, key)
    assert "missing: no signed checkpoint covers the entries" in message


def test_rollback_needs_a_trusted_checkpoint(log_dir: Path, key: PrivateKey) -> None:
    trusted = verify_log(log_dir, key.public).head
    assert trusted is not None
    write_lines(log_dir, lines(log_dir)[:13])
    write_records(log_dir, records(log_dir)[:5])
    assert verify_log(log_dir, key.public).entries == 13  # consistent on its own
    message = problems(log_dir, key, trusted=trusted)
    assert "rolled back: holds 13 entries but the trusted checkpoint covers 20" in message


def test_rewritten_history_against_a_trusted_checkpoint(log_dir: Path, key: PrivateKey) -> None:
    trusted = Checkpoint(
        "securenb.local/audit/" + key.key_id[:16], 7, leaf_hash(b"what we saw before"))
    message = problems(log_dir, key, trusted=trusted)
    assert "does not extend the trusted checkpoint (size 7)" in message


def test_not_a_log_is_could_not_check(tmp_path: Path, key: PrivateKey) -> None:
    with pytest.raises(WorkspaceError, match="no audit log here") as info:
        verify_log(tmp_path, key.public)
    assert info.value.exit_code == 2


def test_verification_error_is_an_audit_error(log_dir: Path, key: PrivateKey) -> None:
    write_lines(log_dir, lines(log_dir)[:-1])
    with pytest.raises(AuditError, match=str(log_dir)):
        verify_log(log_dir, key.public)
