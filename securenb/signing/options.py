"""The choices of a signing request: hash algorithms and notebook scopes.

A module of its own, importing nothing, so that front-ends can build their
options without importing the hashing or notebook code: the CLI unlocks the
signing key before those imports (securenb.signing.unlock). ``hashing`` and
``notebook`` re-export them.
"""

from __future__ import annotations

from typing import Literal

HashAlgorithm = Literal["sha256", "blake3"]
HASH_ALGORITHMS: tuple[HashAlgorithm, ...] = ("sha256", "blake3")

Scope = Literal["source", "executed"]
SCOPES: tuple[Scope, ...] = ("source", "executed")
