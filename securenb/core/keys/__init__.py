"""Keys: signing/verification types, encrypted storage, providers, imports."""

from securenb.core.keys.types import ALGORITHMS, Algorithm, PrivateKey, PublicKey

__all__ = ["ALGORITHMS", "Algorithm", "PrivateKey", "PublicKey"]
