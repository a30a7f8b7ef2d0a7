"""Property tests (hypothesis) for Merkle proofs, the stored-hash layout and notes."""

from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from securenb.core.audit.merkle import (
    MemoryTree,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root_from_frontier,
    root_hash,
    verify_consistency,
    verify_inclusion,
)
from securenb.core.audit.note import Checkpoint, parse_note, sign_checkpoint
from securenb.core.audit.storage import extend, stored_count, stored_index
from securenb.core.keys import PrivateKey
from securenb.errors import AuditError

leaves = st.lists(st.binary(max_size=40), min_size=1, max_size=300)


def ref_mth(d: list[bytes]) -> bytes:
    """RFC 9162 2.1.1 as written (independent of the code under test)."""
    if not d:
        return hashlib.sha256(b"").digest()
    if len(d) == 1:
        return hashlib.sha256(b"\x00" + d[0]).digest()
    k = 1 << ((len(d) - 1).bit_length() - 1)
    return hashlib.sha256(b"\x01" + ref_mth(d[:k]) + ref_mth(d[k:])).digest()


def flip(data: bytes, bit: int) -> bytes:
    i = (bit // 8) % len(data)
    return data[:i] + bytes([data[i] ^ (1 << (bit % 8))]) + data[i + 1:]


@settings(max_examples=150, deadline=None)
@given(leaves, st.data())
def test_inclusion_proofs_verify_and_nothing_else_does(d: list[bytes], data: st.DataObject) -> None:
    tree = MemoryTree([leaf_hash(x) for x in d])
    n = len(d)
    root = ref_mth(d)
    assert tree.root() == root
    m = data.draw(st.integers(0, n - 1))
    proof = inclusion_proof(tree, m, n)
    verify_inclusion(leaf_hash(d[m]), m, n, proof, root)
    if proof:
        i = data.draw(st.integers(0, len(proof) - 1))
        bit = data.draw(st.integers(0, 255))
        bad = [*proof[:i], flip(proof[i], bit), *proof[i + 1:]]
        try:
            verify_inclusion(leaf_hash(d[m]), m, n, bad, root)
        except AuditError:
            pass
        else:
            raise AssertionError("a corrupted inclusion proof verified")
    other = data.draw(st.integers(0, n - 1))
    if d[other] != d[m]:
        try:
            verify_inclusion(leaf_hash(d[other]), m, n, proof, root)
        except AuditError:
            pass
        else:
            raise AssertionError("a proof verified for the wrong leaf")


@settings(max_examples=150, deadline=None)
@given(leaves, st.data())
def test_consistency_proofs_verify_and_wrong_roots_do_not(
    d: list[bytes], data: st.DataObject
) -> None:
    n = len(d)
    m = data.draw(st.integers(0, n))
    tree = MemoryTree([leaf_hash(x) for x in d])
    proof = consistency_proof(tree, m, n)
    old_root, new_root = ref_mth(d[:m]), ref_mth(d)
    verify_consistency(m, n, old_root, new_root, proof)
    if 0 < m < n:
        altered = list(d)
        j = data.draw(st.integers(0, m - 1))
        altered[j] = altered[j] + b"!"
        try:
            verify_consistency(m, n, ref_mth(altered[:m]), new_root, proof)
        except AuditError:
            pass
        else:
            raise AssertionError("a rewritten old tree passed as consistent")


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(1, 40), min_size=1, max_size=12))
def test_appending_in_batches_stores_every_full_subtree(batches: list[int]) -> None:
    frontier: list[bytes] = []
    stored: list[bytes] = []
    d: list[bytes] = []
    for size in batches:
        new = [f"{len(d) + i}".encode() for i in range(size)]
        stored += extend(frontier, len(d), [leaf_hash(x) for x in new])
        d += new
        assert len(stored) == stored_count(len(d))
        assert root_from_frontier(frontier) == ref_mth(d) == root_hash([leaf_hash(x) for x in d])
    for level in range(len(d).bit_length()):
        for index in range(len(d) >> level):
            chunk = d[index << level:(index + 1) << level]
            assert stored[stored_index(level, index)] == ref_mth(chunk)


@settings(max_examples=40, deadline=None)
@given(st.from_regex(r"[a-z0-9./-]{1,30}", fullmatch=True), st.integers(0, 2**63),
       st.binary(min_size=32, max_size=32))
def test_checkpoint_notes_roundtrip(origin: str, size: int, root: bytes) -> None:
    key = PrivateKey.generate("ed25519")
    cp = Checkpoint(origin, size, root)
    note = sign_checkpoint(cp, key)
    assert parse_note(note.to_bytes()) == note
    assert Checkpoint.from_text(note.text) == cp
