"""KMS-held KEKs through Tink's KMS clients (optional extra: ``tink[gcpkms,awskms]``).

Registered as plug-ins of the entry point group ``securenb.kms`` under the
URI schemes Tink uses (``gcp-kms://...``, ``aws-kms://...``). The KMS key never
leaves the KMS; only the wrapped data key travels.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Protocol

from securenb.data.errors import DecryptionError
from securenb.errors import KeyError_, at


class TinkAead(Protocol):
    def encrypt(self, plaintext: bytes, associated_data: bytes) -> bytes: ...

    def decrypt(self, ciphertext: bytes, associated_data: bytes) -> bytes: ...


class TinkAeadKek:
    """A KEK backed by any Tink ``Aead`` (a KMS key); its id is the KMS key URI."""

    def __init__(self, aead: TinkAead, uri: str, algorithm: str) -> None:
        self._aead = aead
        self._uri = uri
        self._algorithm = algorithm

    @property
    def key_id(self) -> str:
        return self._uri

    @property
    def uri(self) -> str:
        return self._uri

    @property
    def algorithm(self) -> str:
        return self._algorithm

    def wrap(self, data_key: bytes, associated_data: bytes) -> bytes:
        return self._aead.encrypt(data_key, associated_data)

    def unwrap(self, wrapped: bytes, associated_data: bytes) -> bytes:
        try:
            return self._aead.decrypt(wrapped, associated_data)
        except Exception as exc:  # the KMS client's own error types
            raise DecryptionError(
                at(self._uri, f"the KMS did not unwrap the data key ({type(exc).__name__})")
            ) from exc


def _client_module(name: str, uri: str) -> ModuleType:
    try:
        return importlib.import_module(f"tink.integration.{name}")
    except ImportError:
        raise KeyError_(at(uri, f"needs Tink's KMS client: pip install 'tink[{name}]'")) from None


def gcp_kms(uri: str) -> TinkAeadKek:
    """``gcp-kms://projects/.../cryptoKeys/...`` with Application Default Credentials."""
    client = _client_module("gcpkms", uri).GcpKmsClient(uri, None)
    return TinkAeadKek(client.get_aead(uri), uri, "gcp-kms")


def aws_kms(uri: str) -> TinkAeadKek:
    """``aws-kms://arn:aws:kms:...`` with the default AWS credential chain."""
    client = _client_module("awskms", uri).AwsKmsClient(uri, None)
    return TinkAeadKek(client.get_aead(uri), uri, "aws-kms")
