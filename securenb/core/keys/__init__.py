"""Keys: signing/verification types, encrypted storage, providers, imports."""

from securenb.core.keys.providers import (
    DEFAULT_PASSPHRASE_ENV,
    ENTRY_POINT_GROUP,
    KeyProvider,
    read_passphrase,
    resolve_public_key,
    resolve_signing_key,
)
from securenb.core.keys.store import KeyInfo, KeyStore
from securenb.core.keys.types import ALGORITHMS, Algorithm, PrivateKey, PublicKey

__all__ = [
    "ALGORITHMS",
    "DEFAULT_PASSPHRASE_ENV",
    "ENTRY_POINT_GROUP",
    "Algorithm",
    "KeyInfo",
    "KeyProvider",
    "KeyStore",
    "PrivateKey",
    "PublicKey",
    "read_passphrase",
    "resolve_public_key",
    "resolve_signing_key",
]
