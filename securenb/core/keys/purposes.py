"""What each key may sign: one key per purpose, so no signature stands for another.

Sigstore and TUF keep the key that signs records apart from the keys that sign
releases, and so do we. A cosign blob signature covers bytes the caller chose;
were the same key to sign DSSE attestations or audit checkpoints, a blob
crafted to be a DSSE pre-authentication encoding or a checkpoint body would
become a record (issue 11.1). Recognising such blobs is no defence (each
format has other encodings); only separate keys are.

- ``record``: attestations, run provenance, audit checkpoints. Never caller
  bytes: only statements securenb builds and validates. Always the workspace
  key store's ``workspace`` key.
- ``release``: model and notebook signatures (both DSSE in-toto statements
  that securenb builds from the files it hashed).
- ``blob``: cosign ``sign-blob``, whose input is any file.
"""

from __future__ import annotations

from typing import Literal

Purpose = Literal["record", "release", "blob"]
PURPOSES: tuple[Purpose, ...] = ("record", "release", "blob")

RECORD_KEY = "workspace"
RELEASE_KEY = "release"
BLOB_KEY = "blob"
DEFAULT_KEYS: dict[Purpose, str] = {"record": RECORD_KEY, "release": RELEASE_KEY,
                                    "blob": BLOB_KEY}

USES: dict[Purpose, str] = {
    "record": "attestations, run provenance and audit checkpoints",
    "release": "models and notebooks",
    "blob": "cosign blobs",
}


def fixed_purpose(name: str) -> Purpose | None:
    """The purpose a default key name always has, whatever its metadata file says."""
    return next((p for p, n in DEFAULT_KEYS.items() if n == name), None)
