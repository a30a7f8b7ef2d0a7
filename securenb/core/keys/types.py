"""In-memory signing and verification keys.

Wraps ``cryptography`` keys so the rest of the code signs and verifies without
knowing the algorithm. ECDSA signatures are DER-encoded (what DSSE, cosign and
Sigstore bundles carry); Ed25519 signatures are the raw 64 bytes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from securenb.errors import KeyError_, SignatureError

Algorithm = Literal["ecdsa-p256", "ecdsa-p384", "ed25519"]
ALGORITHMS: tuple[Algorithm, ...] = ("ecdsa-p256", "ecdsa-p384", "ed25519")

_PrivateKeyTypes = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
_PublicKeyTypes = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey


def _algorithm_of(key: _PrivateKeyTypes | _PublicKeyTypes) -> Algorithm:
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return "ed25519"
    curve = key.curve
    if isinstance(curve, ec.SECP256R1):
        return "ecdsa-p256"
    if isinstance(curve, ec.SECP384R1):
        return "ecdsa-p384"
    raise KeyError_(f"unsupported elliptic curve {curve.name}: use P-256, P-384 or Ed25519")


def _hash_for(algorithm: Algorithm) -> hashes.HashAlgorithm:
    return hashes.SHA384() if algorithm == "ecdsa-p384" else hashes.SHA256()


@dataclass(frozen=True)
class PublicKey:
    """A verification key; ``key_id`` is the hex SHA-256 of its SPKI DER."""

    key: _PublicKeyTypes

    @property
    def algorithm(self) -> Algorithm:
        return _algorithm_of(self.key)

    def der(self) -> bytes:
        return self.key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def pem(self) -> bytes:
        return self.key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    @property
    def key_id(self) -> str:
        return hashlib.sha256(self.der()).hexdigest()

    def verify(self, signature: bytes, data: bytes) -> None:
        """Raise SignatureError unless ``signature`` over ``data`` is valid."""
        try:
            if isinstance(self.key, ed25519.Ed25519PublicKey):
                self.key.verify(signature, data)
            else:
                self.key.verify(signature, data, ec.ECDSA(_hash_for(self.algorithm)))
        except (InvalidSignature, ValueError) as exc:
            raise SignatureError(
                f"signature does not verify with key {self.key_id[:16]}"
            ) from exc

    @classmethod
    def from_pem(cls, data: bytes, source: str = "public key") -> PublicKey:
        try:
            key = serialization.load_pem_public_key(data)
        except ValueError as exc:
            raise KeyError_(f"{source}: not a PEM public key ({exc})") from exc
        if not isinstance(key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey):
            raise KeyError_(f"{source}: unsupported key type {type(key).__name__}")
        _algorithm_of(key)
        return cls(key)


@dataclass(frozen=True)
class PrivateKey:
    """A signing key held in memory only as long as needed."""

    key: _PrivateKeyTypes

    @property
    def algorithm(self) -> Algorithm:
        return _algorithm_of(self.key)

    @property
    def public(self) -> PublicKey:
        return PublicKey(self.key.public_key())

    @property
    def key_id(self) -> str:
        return self.public.key_id

    def sign(self, data: bytes) -> bytes:
        if isinstance(self.key, ed25519.Ed25519PrivateKey):
            return self.key.sign(data)
        return self.key.sign(data, ec.ECDSA(_hash_for(self.algorithm)))

    @classmethod
    def generate(cls, algorithm: Algorithm = "ecdsa-p256") -> PrivateKey:
        if algorithm == "ed25519":
            return cls(ed25519.Ed25519PrivateKey.generate())
        if algorithm == "ecdsa-p384":
            return cls(ec.generate_private_key(ec.SECP384R1()))
        if algorithm == "ecdsa-p256":
            return cls(ec.generate_private_key(ec.SECP256R1()))
        raise KeyError_(f"unknown key algorithm {algorithm!r}: choose one of {ALGORITHMS}")
