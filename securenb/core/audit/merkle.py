"""RFC 9162 (Certificate Transparency v2) Merkle tree hashing and proofs.

Written from the RFC's text: leaf hash ``SHA-256(0x00 || entry)``, interior node
``SHA-256(0x01 || left || right)``, the Merkle Tree Hash (MTH) of any size
(section 2.1.1), inclusion proofs (2.1.3) and consistency proofs (2.1.4).
Verification follows the RFC's iterative algorithms step by step, because a
verifier that merely re-derives proofs the way the prover does would share its
bugs. Proof *generation* works over any :class:`SubtreeHashes` source, so the
same code serves an in-memory tree and the on-disk hash store of the log.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Protocol

from securenb.errors import AuditError

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
"""MTH({}) = SHA-256() of the empty string (RFC 9162 2.1.1)."""

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


def leaf_hash(entry: bytes) -> bytes:
    """MTH({d}) = HASH(0x00 || d): the domain prefix stops a leaf posing as a node."""
    return hashlib.sha256(_LEAF_PREFIX + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """HASH(0x01 || left || right) for an interior node."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def largest_power_of_two_below(n: int) -> int:
    """The RFC's split point k: the largest power of two smaller than ``n`` (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


class SubtreeHashes(Protocol):
    """A source of MTH(D[lo:hi]) for the leaves of one tree."""

    def subtree_hash(self, lo: int, hi: int) -> bytes: ...


class MemoryTree:
    """All full subtree hashes of a list of leaf hashes, kept level by level.

    ``levels[h][k]`` is the MTH of leaves ``[k * 2**h, (k + 1) * 2**h)``; only full
    subtrees are kept, so any range is composed from at most 2 log n of them.
    """

    def __init__(self, leaf_hashes: Sequence[bytes]) -> None:
        self.size = len(leaf_hashes)
        level = list(leaf_hashes)
        self.levels: list[list[bytes]] = [level]
        sha256 = hashlib.sha256  # node_hash inlined: this loop is the verifier's hot path
        while len(level) > 1:
            level = [sha256(_NODE_PREFIX + a + b).digest()
                     for a, b in zip(level[0::2], level[1::2], strict=False)]
            self.levels.append(level)

    def subtree_hash(self, lo: int, hi: int) -> bytes:
        if not 0 <= lo < hi <= self.size:
            raise ValueError(f"subtree [{lo}, {hi}) is outside a tree of {self.size} leaves")
        n = hi - lo
        if n & (n - 1) == 0 and lo % n == 0:
            return self.levels[n.bit_length() - 1][lo // n]
        k = largest_power_of_two_below(n)
        return node_hash(self.subtree_hash(lo, lo + k), self.subtree_hash(lo + k, hi))

    def root(self) -> bytes:
        return EMPTY_ROOT if self.size == 0 else self.subtree_hash(0, self.size)


def root_hash(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH of a list of leaf hashes (any size, including 0)."""
    return MemoryTree(leaf_hashes).root()


def root_from_frontier(frontier: Sequence[bytes]) -> bytes:
    """Root of a tree given the hashes of its full subtrees, largest (leftmost) first.

    The tree of size n is the fold, right to left, of the perfect subtrees
    named by the set bits of n: that is the RFC's recursive split unrolled.
    """
    if not frontier:
        return EMPTY_ROOT
    root = frontier[-1]
    for left in reversed(frontier[:-1]):
        root = node_hash(left, root)
    return root


def inclusion_proof(tree: SubtreeHashes, index: int, size: int) -> list[bytes]:
    """PATH(index, D[0:size]) of RFC 9162 2.1.3.1, leaf-side first."""
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is not in a tree of {size} leaves")
    path: list[bytes] = []
    lo, hi, m = 0, size, index
    while hi - lo > 1:
        k = largest_power_of_two_below(hi - lo)
        if m < k:
            path.append(tree.subtree_hash(lo + k, hi))
            hi = lo + k
        else:
            path.append(tree.subtree_hash(lo, lo + k))
            lo, m = lo + k, m - k
    path.reverse()
    return path


def consistency_proof(tree: SubtreeHashes, old_size: int, new_size: int) -> list[bytes]:
    """PROOF(old_size, D[0:new_size]) of RFC 9162 2.1.4.1 (empty for 0 or equal sizes)."""
    if not 0 <= old_size <= new_size:
        raise ValueError(f"no consistency proof from size {old_size} to {new_size}")
    if old_size in (0, new_size):
        return []
    proof: list[bytes] = []
    lo, hi, m, complete = 0, new_size, old_size, True
    while True:
        n = hi - lo
        if m == n:
            if not complete:
                proof.append(tree.subtree_hash(lo, hi))
            break
        k = largest_power_of_two_below(n)
        if m <= k:
            proof.append(tree.subtree_hash(lo + k, hi))
            hi = lo + k
        else:
            proof.append(tree.subtree_hash(lo, lo + k))
            lo, m, complete = lo + k, m - k, False
    proof.reverse()
    return proof


def _check_hash(value: bytes, what: str) -> None:
    if len(value) != HASH_SIZE:
        raise AuditError(f"{what} is {len(value)} bytes, not a {HASH_SIZE}-byte SHA-256 hash")


def root_from_inclusion_proof(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes]
) -> bytes:
    """Run RFC 9162 2.1.3.2 and return the root the proof leads to.

    Raises AuditError when the proof is structurally wrong for (index, size).
    """
    _check_hash(leaf, "leaf hash")
    # Step 1.
    if not 0 <= index < size:
        raise AuditError(f"inclusion proof: leaf index {index} is not in a tree of {size}")
    # Steps 2 and 3.
    fn, sn, r = index, size - 1, leaf
    # Step 4.
    for i, p in enumerate(proof):
        _check_hash(p, f"inclusion proof hash {i}")
        if sn == 0:
            raise AuditError(f"inclusion proof: {len(proof)} hashes, too many for {index}/{size}")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    # Step 5 (the root comparison is the caller's).
    if sn != 0:
        raise AuditError(f"inclusion proof: {len(proof)} hashes, too few for {index}/{size}")
    return r


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Raise AuditError unless ``proof`` shows leaf ``index`` under ``root`` (RFC 9162 2.1.3.2)."""
    _check_hash(root, "root hash")
    if root_from_inclusion_proof(leaf, index, size, proof) != root:
        raise AuditError(
            f"inclusion proof: leaf {index} of tree size {size} does not lead to the root hash"
        )


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Raise AuditError unless ``proof`` shows tree ``new`` extends tree ``old``.

    RFC 9162 2.1.4.2 covers 0 < old < new; the edge cases follow from the
    definitions: any tree extends the empty one, and a tree extends only
    itself at the same size (both with an empty proof).
    """
    _check_hash(old_root, "old root hash")
    _check_hash(new_root, "new root hash")
    if not 0 <= old_size <= new_size:
        raise AuditError(f"consistency: size {new_size} does not extend size {old_size}")
    if old_size in (0, new_size):
        if proof:
            raise AuditError(f"consistency proof {old_size}->{new_size} must be empty")
        if old_size == 0 and old_root != EMPTY_ROOT:
            raise AuditError("consistency: a tree of size 0 must have the empty root")
        if old_size == new_size and old_root != new_root:
            raise AuditError(f"consistency: two different roots for tree size {old_size}")
        return
    for i, c in enumerate(proof):
        _check_hash(c, f"consistency proof hash {i}")
    # Step 1.
    if not proof:
        raise AuditError(f"consistency proof {old_size}->{new_size} is empty")
    # Step 2.
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    # Step 3.
    fn, sn = old_size - 1, new_size - 1
    # Step 4.
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # Step 5.
    fr = sr = path[0]
    # Step 6.
    for c in path[1:]:
        if sn == 0:
            raise AuditError(f"consistency proof {old_size}->{new_size} has too many hashes")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    # Step 7.
    if sn != 0:
        raise AuditError(f"consistency proof {old_size}->{new_size} has too few hashes")
    if fr != old_root:
        raise AuditError(
            f"consistency proof {old_size}->{new_size} does not lead to the old root hash"
        )
    if sr != new_root:
        raise AuditError(
            f"consistency proof {old_size}->{new_size} does not lead to the new root hash"
        )
