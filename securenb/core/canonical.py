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
