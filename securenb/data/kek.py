"""Key-encryption keys (KEKs): what wraps each dataset's data key.

A KEK is named by a URI and only the URI is ever recorded: ``env:NAME``,
``file:PATH`` (mode 0600), ``keyring:[SERVICE/]NAME`` (the OS keyring) hold a
local AES-256-GCM key as base64; any other scheme (``gcp-kms://...``,
``aws-kms://...``) is served by a plug-in registered in the entry point group
``securenb.kms``, a callable taking the URI and returning a KeyEncryptionKey.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import stat
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path
from typing import Protocol, runtime_checkable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from securenb.core.fsutil import atomic_write_bytes
from securenb.data.errors import DecryptionError
from securenb.errors import KeyError_, at

KMS_ENTRY_POINTS = "securenb.kms"
DEFAULT_KEK_URI = "env:SECURENB_KEK"
KEYRING_SERVICE = "securenb-kek"
LOCAL_SCHEMES = ("env", "file", "keyring")


@runtime_checkable
class KeyEncryptionKey(Protocol):
    """Wraps and unwraps data keys; ``key_id`` and ``uri`` are public, the key is not."""

    @property
    def key_id(self) -> str:
        """A stable identifier that reveals nothing about the key."""
        ...

    @property
    def uri(self) -> str:
        """Where to find this KEK again (recorded beside the wrapped key)."""
        ...

    @property
    def algorithm(self) -> str: ...

    def wrap(self, data_key: bytes, associated_data: bytes) -> bytes: ...

    def unwrap(self, wrapped: bytes, associated_data: bytes) -> bytes:
        """Return the data key, or raise DecryptionError (wrong KEK or tampered)."""
        ...


class LocalKek:
    """An AES-256-GCM KEK held locally; wrapped key = 12-byte nonce || ciphertext || tag."""

    algorithm = "AES256-GCM"

    def __init__(self, material: bytes, uri: str = "memory:") -> None:
        if len(material) != 32:
            raise KeyError_(at(uri, f"a KEK is 32 bytes, got {len(material)}"))
        self._aead = AESGCM(material)
        fingerprint = hmac.new(material, b"securenb/kek-id/v1", hashlib.sha256).hexdigest()
        self._id = "local:" + fingerprint[:32]
        self._uri = uri

    @classmethod
    def generate(cls, uri: str = "memory:") -> LocalKek:
        return cls(AESGCM.generate_key(256), uri)

    @property
    def key_id(self) -> str:
        return self._id

    @property
    def uri(self) -> str:
        return self._uri

    def __repr__(self) -> str:
        return f"LocalKek({self._uri!r}, key_id={self._id!r})"

    def wrap(self, data_key: bytes, associated_data: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, data_key, associated_data)

    def unwrap(self, wrapped: bytes, associated_data: bytes) -> bytes:
        try:
            return self._aead.decrypt(wrapped[:12], wrapped[12:], associated_data)
        except (InvalidTag, ValueError):
            raise DecryptionError(
                at(self._uri, "the wrapped key does not open with this KEK")
            ) from None


def _decode_kek(text: bytes, uri: str) -> bytes:
    try:
        standard = text.strip().translate(bytes.maketrans(b"-_", b"+/"))
        material = base64.b64decode(standard, validate=True)
    except (binascii.Error, ValueError):
        raise KeyError_(at(uri, "does not hold a base64 KEK")) from None
    if len(material) != 32:
        raise KeyError_(at(uri, f"holds {len(material)} bytes; a KEK is 32 bytes (base64)"))
    return material


def _keyring_name(rest: str) -> tuple[str, str]:
    service, _, name = rest.rpartition("/")
    return service or KEYRING_SERVICE, name


def read_secret(uri: str) -> bytes:
    """The secret text stored at a local ``env:``, ``file:`` or ``keyring:`` URI."""
    scheme, _, rest = uri.partition(":")
    if scheme == "env":
        value = os.environ.get(rest)
        if not value:
            raise KeyError_(at(uri, f"environment variable {rest} is not set"))
        return value.encode()
    if scheme == "file":
        path = Path(rest).expanduser()
        try:
            mode = path.stat().st_mode
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise KeyError_(
                    at(path, f"secret file is accessible to other users "
                             f"(mode {oct(mode & 0o777)}); chmod 600 it")
                )
            return path.read_bytes()
        except OSError as exc:
            raise KeyError_(at(path, f"cannot read secret file ({exc.strerror})")) from None
    if scheme == "keyring":
        import keyring

        service, name = _keyring_name(rest)
        value = keyring.get_password(service, name)
        if value is None:
            raise KeyError_(at(uri, f"no secret {name!r} in the OS keyring (service {service!r})"))
        return str(value).encode()
    raise KeyError_(at(uri, f"unknown secret scheme {scheme!r}; use env:, file: or keyring:"))


def create_local_kek(uri: str) -> LocalKek:
    """Generate a KEK and store it at a ``file:`` (0600, never overwritten) or ``keyring:`` URI."""
    scheme, _, rest = uri.partition(":")
    kek_material = AESGCM.generate_key(256)
    text = base64.b64encode(kek_material).decode()
    if scheme == "file":
        path = Path(rest).expanduser()
        if path.exists():
            raise KeyError_(at(path, "exists; refusing to overwrite a KEK"))
        atomic_write_bytes(path, (text + "\n").encode(), mode=0o600)
    elif scheme == "keyring":
        import keyring

        service, name = _keyring_name(rest)
        if keyring.get_password(service, name) is not None:
            raise KeyError_(at(uri, "exists in the OS keyring; refusing to overwrite a KEK"))
        keyring.set_password(service, name, text)
    else:
        raise KeyError_(at(uri, "a new KEK can be stored at file:PATH or keyring:NAME only"))
    return LocalKek(kek_material, uri)


def resolve_kek(uri: str) -> KeyEncryptionKey:
    """The KEK a URI names: local schemes here, anything else through a plug-in."""
    scheme = uri.partition(":")[0]
    if scheme in LOCAL_SCHEMES:
        return LocalKek(_decode_kek(read_secret(uri), uri), uri)
    plugins = {ep.name: ep for ep in entry_points(group=KMS_ENTRY_POINTS)}
    if scheme not in plugins:
        known = ", ".join(sorted(plugins)) or "none installed"
        raise KeyError_(
            at(uri, f"no KEK provider for scheme {scheme!r}: use env:, file:, keyring: or a "
                    f"KMS plug-in (entry point group {KMS_ENTRY_POINTS}; {known})")
        )
    factory: Callable[[str], object] = plugins[scheme].load()
    kek = factory(uri)
    if not isinstance(kek, KeyEncryptionKey):
        raise KeyError_(at(uri, f"the {scheme!r} plug-in did not return a KeyEncryptionKey"))
    return kek


def as_kek(kek: KeyEncryptionKey | str) -> KeyEncryptionKey:
    return resolve_kek(kek) if isinstance(kek, str) else kek
