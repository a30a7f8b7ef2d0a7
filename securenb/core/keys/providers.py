"""Where a signing key comes from, chosen by one reference string.

``NAME`` is a key in the workspace KeyStore; ``file:PATH`` a PEM or cosign key
file; ``env:VAR`` PEM text in an environment variable (CI secrets);
``keyring:NAME`` PEM text in the OS keyring (service ``securenb``). Any other
``SCHEME:LOCATION`` goes to a plug-in registered under the entry point group
``securenb.key_providers`` (how a KMS fits in without securenb depending on it).

Passphrases come from an environment variable or a hidden prompt on a
terminal, are asked for only when a key is encrypted, and never appear in a
message, a log or a record.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, runtime_checkable

from securenb.core.keys.pem import load_private_key, load_public_key, private_block, read_key_file
from securenb.core.keys.store import KeyStore, validate_name
from securenb.core.keys.types import PrivateKey, PublicKey
from securenb.errors import KeyError_, at

DEFAULT_PASSPHRASE_ENV = "SECURENB_KEY_PASSPHRASE"  # noqa: S105 - a variable name, not a secret
KEYRING_SERVICE = "securenb"
ENTRY_POINT_GROUP = "securenb.key_providers"


@runtime_checkable
class KeyProvider(Protocol):
    """A plug-in key source for references ``SCHEME:LOCATION``, e.g. a cloud KMS.

    Register a factory taking no arguments (usually the class) under the entry
    point group ``securenb.key_providers``, named by the scheme. A KMS never
    hands out its private key: ``signing_key`` returns a PrivateKey wrapping a
    ``cryptography`` EllipticCurvePrivateKey (or Ed25519PrivateKey) subclass
    whose ``sign`` calls the KMS and whose ``private_bytes`` refuses.
    """

    def signing_key(self, location: str, passphrase_env: str) -> PrivateKey: ...

    def public_key(self, location: str) -> PublicKey: ...


def read_passphrase(
    env: str = DEFAULT_PASSPHRASE_ENV, *, confirm: bool = False, purpose: str = "the signing key"
) -> str:
    """The passphrase in ``$env``, else asked on the terminal with echo off.

    With no variable and no terminal (CI, a Jupyter kernel) it fails instead of
    hanging on a prompt nobody sees. ``confirm`` (a new key) refuses an empty one;
    reading an existing key accepts it (cosign keys may have an empty password).
    """
    value = os.environ.get(env)
    if value == "" and confirm:
        raise KeyError_(f"no passphrase for {purpose}: the environment variable {env} is empty")
    if value is not None:
        return value
    if sys.stdin is None or not sys.stdin.isatty():
        raise KeyError_(
            f"no passphrase for {purpose}: set the environment variable {env} "
            "(there is no terminal to ask on)"
        )
    import click  # deferred, like entry_points below: see the note in _plugin

    return str(
        click.prompt(f"Passphrase for {purpose}", hide_input=True, confirmation_prompt=confirm)
    )


def split_ref(ref: str) -> tuple[str | None, str]:
    """``(scheme, location)``; scheme is None for a bare KeyStore name."""
    scheme, sep, location = ref.partition(":")
    if not sep:
        return None, validate_name(ref)
    if not scheme or not location:
        raise KeyError_(f"invalid key reference {ref!r}: expected NAME or SCHEME:LOCATION")
    return scheme, location


def resolve_signing_key(
    ref: str, keystore: KeyStore | None = None, passphrase_env: str = DEFAULT_PASSPHRASE_ENV
) -> PrivateKey:
    """Unlock the private key that ``ref`` names, asking for a passphrase only if needed."""
    scheme, location = split_ref(ref)
    if scheme is None:
        store = _keystore_for(ref, keystore)
        if not store.key_path(location).exists():
            raise KeyError_(at(store.directory, f"no key named {location!r}"))
        passphrase = read_passphrase(passphrase_env, purpose=f"key {location!r}")
        return store.load(location, passphrase)
    source = _PEM_SOURCES.get(scheme)
    if source is None:
        return _plugin(scheme, ref).signing_key(location, passphrase_env)
    data, label = source(location)
    secret = None
    if private_block(data, label).encrypted:
        secret = read_passphrase(passphrase_env, purpose=label).encode()
    return load_private_key(data, secret, label)


def resolve_public_key(ref: str, keystore: KeyStore | None = None) -> PublicKey:
    """The public key that ``ref`` names; never needs a passphrase."""
    scheme, location = split_ref(ref)
    if scheme is None:
        return _keystore_for(ref, keystore).public(location)
    source = _PEM_SOURCES.get(scheme)
    if source is None:
        return _plugin(scheme, ref).public_key(location)
    data, label = source(location)
    return load_public_key(data, label)


def _keystore_for(ref: str, keystore: KeyStore | None) -> KeyStore:
    if keystore is None:
        raise KeyError_(f"key reference {ref!r} names a workspace key, but no key store was given")
    return keystore


def _from_file(location: str) -> tuple[bytes, str]:
    path = Path(location).expanduser()
    return read_key_file(path), str(path)


def _from_env(variable: str) -> tuple[bytes, str]:
    ref = f"env:{variable}"
    value = os.environ.get(variable)
    if value is None:
        raise KeyError_(f"environment variable {variable} is not set (key reference {ref})")
    if "\n" not in value and "\\n" in value:
        value = value.replace("\\n", "\n")  # CI secret stores often flatten newlines
    return value.encode("utf-8", "replace"), f"environment variable {variable}"


def _from_keyring(name: str) -> tuple[bytes, str]:
    import keyring
    from keyring.errors import KeyringError

    label = f"keyring entry {name!r} (service {KEYRING_SERVICE!r})"
    try:
        value = keyring.get_password(KEYRING_SERVICE, name)
    except KeyringError as exc:
        raise KeyError_(f"{label}: the OS keyring failed ({exc})") from None
    if value is None:
        backend = type(keyring.get_keyring()).__name__
        raise KeyError_(f"{label}: no such entry in the OS keyring ({backend})")
    return str(value).encode("utf-8", "replace"), label


_PEM_SOURCES: dict[str, Callable[[str], tuple[bytes, str]]] = {
    "file": _from_file,
    "env": _from_env,
    "keyring": _from_keyring,
}


def _plugin(scheme: str, ref: str) -> KeyProvider:
    # Deferred: importlib.metadata costs ~4 MB of RSS, and what a process imports
    # before it unlocks a key adds to the KDF's 64 MiB in its peak (docs/signing.md).
    from importlib.metadata import entry_points

    found = list(entry_points(group=ENTRY_POINT_GROUP, name=scheme))
    if not found:
        raise KeyError_(
            f"unknown key reference {ref!r}: use NAME, file:PATH, env:VAR or keyring:NAME, "
            f"or install a plug-in for {scheme!r} (entry point group {ENTRY_POINT_GROUP})"
        )
    try:
        provider = found[0].load()()
    except Exception as exc:
        raise KeyError_(f"key provider plug-in {scheme!r} failed to load: {exc}") from exc
    if not isinstance(provider, KeyProvider):
        raise KeyError_(f"key provider plug-in {scheme!r} lacks signing_key/public_key")
    return provider
