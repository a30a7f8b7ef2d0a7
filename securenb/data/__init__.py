"""Encrypted datasets: streaming AEAD at rest, envelope keys, manifests, loaders.

Files are Tink's streaming AEAD (AES-GCM-HKDF, 1 MB segments), so the `tink`
package reads them; each dataset has a fresh data key wrapped by a KEK, and a
manifest (schema, ciphertext digest, source, roles) checked on every load.
Importing this package stays light (no pandas, NumPy or torch): the loaders
and the torch Dataset import on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from securenb.data.data_key import DATA_KEY_ENV, DataKey
from securenb.data.dataset import (
    DecryptResult,
    EncryptResult,
    Inspection,
    RotateResult,
    check_access,
    data_key_for,
    decrypt,
    encrypt,
    inspect,
    manifest_of,
    open_encrypted,
    rotate,
)
from securenb.data.errors import (
    AccessDenied,
    DataFormatError,
    DataValidationError,
    DecryptionError,
)
from securenb.data.fernet_legacy import migrate, read_fernet
from securenb.data.kek import (
    DEFAULT_KEK_URI,
    KeyEncryptionKey,
    LocalKek,
    create_local_kek,
    resolve_kek,
)
from securenb.data.manifest import ArraySpec, Column, Manifest, Schema
from securenb.data.random_access import EncryptedReader
from securenb.data.streaming_aead import (
    AES256_GCM_HKDF_1MB,
    AES256_GCM_HKDF_4KB,
    StreamingParams,
    decrypt_bytes,
    decrypt_into,
    decrypt_stream,
    encrypt_bytes,
    encrypt_into,
    encrypt_stream,
)

if TYPE_CHECKING:
    from securenb.data.loaders import load_numpy, read_csv, read_parquet
    from securenb.data.torch_dataset import EncryptedArrayDataset
    from securenb.data.validation import check, infer_schema

_LAZY = {
    "read_csv": "securenb.data.loaders",
    "read_parquet": "securenb.data.loaders",
    "load_numpy": "securenb.data.loaders",
    "check": "securenb.data.validation",
    "infer_schema": "securenb.data.validation",
    "EncryptedArrayDataset": "securenb.data.torch_dataset",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'securenb.data' has no attribute {name!r}")


__all__ = [
    "AES256_GCM_HKDF_1MB",
    "AES256_GCM_HKDF_4KB",
    "DATA_KEY_ENV",
    "DEFAULT_KEK_URI",
    "AccessDenied",
    "ArraySpec",
    "Column",
    "DataFormatError",
    "DataKey",
    "DataValidationError",
    "DecryptResult",
    "DecryptionError",
    "EncryptResult",
    "EncryptedArrayDataset",
    "EncryptedReader",
    "Inspection",
    "KeyEncryptionKey",
    "LocalKek",
    "Manifest",
    "RotateResult",
    "Schema",
    "StreamingParams",
    "check",
    "check_access",
    "create_local_kek",
    "data_key_for",
    "decrypt",
    "decrypt_bytes",
    "decrypt_into",
    "decrypt_stream",
    "encrypt",
    "encrypt_bytes",
    "encrypt_into",
    "encrypt_stream",
    "infer_schema",
    "inspect",
    "load_numpy",
    "manifest_of",
    "migrate",
    "open_encrypted",
    "read_csv",
    "read_fernet",
    "read_parquet",
    "resolve_kek",
    "rotate",
]
