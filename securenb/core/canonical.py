"""Canonical JSON (RFC 8785, JCS) for everything we hash or sign.

One canonical form means one digest per logical document: a re-serialised
attestation or notebook verifies the same. We use the ``rfc8785`` package
rather than our own encoder.
"""

from __future__ import annotations

import hashlib
from typing import Any

import rfc8785


def canonical_json(obj: Any) -> bytes:
    """Return the RFC 8785 canonical UTF-8 bytes of ``obj``."""
    return rfc8785.dumps(obj)


def sha256_hex(data: bytes) -> str:
    """Hex SHA-256, the digest form used in records (``sha256:<hex>`` in URIs)."""
    return hashlib.sha256(data).hexdigest()


class DuplicateKeyError(ValueError):
    """A JSON object repeats a key: parsers disagree on which value counts."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``json.loads(..., object_pairs_hook=no_duplicate_keys)`` refuses repeated keys."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise DuplicateKeyError(key)
        out[key] = value
    return out
