"""RFC 9162 Merkle tree functions against a naive transcription of the RFC's definitions."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from securenb.core.audit.merkle import (
    EMPTY_ROOT,
    MemoryTree,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root_from_frontier,
    root_from_inclusion_proof,
    root_hash,
    verify_consistency,
    verify_inclusion,
)
from securenb.core.audit.storage import HashStore, extend, frontier_levels, stored_count
from securenb.errors import AuditError

# -- the reference: RFC 9162 2.1.1, 2.1.3.1, 2.1.4.1, written as literally as possible ----


def ref_mth(d: list[bytes]) -> bytes:
    n = len(d)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + d[0]).digest()
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + ref_mth(d[:k]) + ref_mth(d[k:])).digest()


def ref_path(m: int, d: list[bytes]) -> list[bytes]:
    n = len(d)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return [*ref_path(m, d[:k]), ref_mth(d[k:])]
    return [*ref_path(m - k, d[k:]), ref_mth(d[:k])]


def ref_subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [ref_mth(d)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return [*ref_subproof(m, d[:k], b), ref_mth(d[k:])]
    return [*ref_subproof(m - k, d[k:], False), ref_mth(d[:k])]


def ref_proof(m: int, d: list[bytes]) -> list[bytes]:
    return ref_subproof(m, d, True)


def data(n: int) -> list[bytes]:
    return [f"entry {i}".encode() for i in range(n)]


def tree_of(d: list[bytes]) -> MemoryTree:
    return MemoryTree([leaf_hash(x) for x in d])


# Leaves and roots of the Certificate Transparency reference test suite (RFC 6962 hashing).
CT_LEAVES = [bytes.fromhex(h) for h in (
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
)]
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def test_empty_tree_is_sha256_of_nothing() -> None:
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert root_hash([]) == EMPTY_ROOT == ref_mth([])


@pytest.mark.parametrize("size", range(1, 9))
def test_known_roots_of_the_ct_test_vectors(size: int) -> None:
    leaves = CT_LEAVES[:size]
    assert root_hash([leaf_hash(x) for x in leaves]).hex() == CT_ROOTS[size - 1]
    assert ref_mth(leaves).hex() == CT_ROOTS[size - 1]


def test_roots_of_every_size_up_to_70() -> None:
    for n in range(71):
        d = data(n)
        assert root_hash([leaf_hash(x) for x in d]) == ref_mth(d), n


def test_every_inclusion_proof_up_to_size_40() -> None:
    for n in range(1, 41):
        d = data(n)
        tree, root = tree_of(d), ref_mth(d)
        for m in range(n):
            proof = inclusion_proof(tree, m, n)
            assert proof == ref_path(m, d), (m, n)
            verify_inclusion(leaf_hash(d[m]), m, n, proof, root)


def test_every_consistency_proof_up_to_size_40() -> None:
    for n in range(1, 41):
        d = data(n)
        tree, new_root = tree_of(d), ref_mth(d)
        for m in range(1, n):
            proof = consistency_proof(tree, m, n)
            assert proof == ref_proof(m, d), (m, n)
            verify_consistency(m, n, ref_mth(d[:m]), new_root, proof)


def test_inclusion_proofs_of_sizes_41_to_70_spot_checked() -> None:
    for n in range(41, 71):
        d = data(n)
        tree, root = tree_of(d), ref_mth(d)
        for m in {0, 1, n // 2, n - 2, n - 1}:
            proof = inclusion_proof(tree, m, n)
            assert proof == ref_path(m, d)
            verify_inclusion(leaf_hash(d[m]), m, n, proof, root)


def test_inclusion_rejects_every_wrong_proof() -> None:
    n = 13
    d = data(n)
    tree, root = tree_of(d), ref_mth(d)
    for m in range(n):
        proof = inclusion_proof(tree, m, n)
        leaf = leaf_hash(d[m])
        for i in range(len(proof)):
            bad = list(proof)
            bad[i] = bytes([bad[i][0] ^ 1]) + bad[i][1:]
            with pytest.raises(AuditError, match="does not lead to the root"):
                verify_inclusion(leaf, m, n, bad, root)
        with pytest.raises(AuditError):
            verify_inclusion(leaf, m, n, [*proof, proof[0]], root)
        with pytest.raises(AuditError):
            verify_inclusion(leaf, m, n, proof[:-1], root)
        for other in range(n):
            if other != m:
                with pytest.raises(AuditError):
                    verify_inclusion(leaf, other, n, proof, root)
        with pytest.raises(AuditError, match="does not lead"):
            verify_inclusion(leaf_hash(b"forged"), m, n, proof, root)


def test_inclusion_structural_errors() -> None:
    leaf = leaf_hash(b"x")
    with pytest.raises(AuditError, match="not in a tree"):
        root_from_inclusion_proof(leaf, 5, 5, [])
    with pytest.raises(AuditError, match="not in a tree"):
        root_from_inclusion_proof(leaf, -1, 5, [])
    with pytest.raises(AuditError, match="32-byte"):
        root_from_inclusion_proof(b"short", 0, 1, [])
    with pytest.raises(AuditError, match="hash 0"):
        root_from_inclusion_proof(leaf, 0, 2, [b"short"])
    assert root_from_inclusion_proof(leaf, 0, 1, []) == leaf


def test_consistency_rejects_wrong_proofs_and_roots() -> None:
    n = 21
    d = data(n)
    tree, new_root = tree_of(d), ref_mth(d)
    for m in range(1, n):
        proof = consistency_proof(tree, m, n)
        old_root = ref_mth(d[:m])
        for i in range(len(proof)):
            bad = list(proof)
            bad[i] = bytes([bad[i][0] ^ 0x80]) + bad[i][1:]
            with pytest.raises(AuditError):
                verify_consistency(m, n, old_root, new_root, bad)
        with pytest.raises(AuditError):
            verify_consistency(m, n, ref_mth(data(m + 1)[1:]), new_root, proof)
        with pytest.raises(AuditError):
            verify_consistency(m, n, old_root, ref_mth([*d[:-1], b"other"]), proof)
        with pytest.raises(AuditError):
            verify_consistency(m, n, old_root, new_root, [])
        with pytest.raises(AuditError):
            verify_consistency(m, n, old_root, new_root, [*proof, proof[-1]])
        if m + 1 < n:
            with pytest.raises(AuditError):
                verify_consistency(m + 1, n, old_root, new_root, proof)


def test_consistency_edge_sizes() -> None:
    d = data(5)
    root = ref_mth(d)
    verify_consistency(0, 5, EMPTY_ROOT, root, [])
    verify_consistency(5, 5, root, root, [])
    assert consistency_proof(tree_of(d), 0, 5) == []
    assert consistency_proof(tree_of(d), 5, 5) == []
    with pytest.raises(AuditError, match="two different roots"):
        verify_consistency(5, 5, root, EMPTY_ROOT, [])
    with pytest.raises(AuditError, match="must be empty"):
        verify_consistency(5, 5, root, root, [root])
    with pytest.raises(AuditError, match="empty root"):
        verify_consistency(0, 5, root, root, [])
    with pytest.raises(AuditError, match="does not extend"):
        verify_consistency(6, 5, root, root, [])
    with pytest.raises(ValueError):
        consistency_proof(tree_of(d), 6, 5)


def test_stored_hash_layout_serves_the_same_tree(tmp_path: Path) -> None:
    """tree.bin's append-only layout (leaf, then completed subtrees) against the reference."""
    path = tmp_path / "tree.bin"
    frontier: list[bytes] = []
    records: list[bytes] = []
    d = data(70)
    for start, stop in ((0, 1), (1, 2), (2, 7), (7, 8), (8, 33), (33, 70)):
        records += extend(frontier, start, [leaf_hash(x) for x in d[start:stop]])
        assert len(records) == stored_count(stop)
        assert root_from_frontier(frontier) == ref_mth(d[:stop])
        assert len(frontier) == len(frontier_levels(stop))
    path.write_bytes(b"".join(records))
    fd = os.open(path, os.O_RDONLY)
    try:
        for n in (1, 2, 3, 8, 31, 64, 70):
            store = HashStore(fd, n, path)
            assert root_from_frontier(store.frontier()) == ref_mth(d[:n])
            for m in range(n):
                assert inclusion_proof(store, m, n) == ref_path(m, d[:n])
            for m in range(1, n):
                assert consistency_proof(store, m, n) == ref_proof(m, d[:n])
    finally:
        os.close(fd)
