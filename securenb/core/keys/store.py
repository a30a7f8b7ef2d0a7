"""Keys kept in one folder (the workspace's ``.securenb/keys/``), encrypted at rest.

Each key NAME is three files: ``NAME.key``, the private key as encrypted PKCS#8
PEM (mode 0600); ``NAME.pub``, its SPKI PEM public key, readable without a
passphrase so anyone can verify; ``NAME.json``, when it was created and what it
may sign (its purpose, securenb.core.keys.purposes). Every file
is written atomically, the private key last, so a crash never leaves a key
half-written, and a ``.key`` that does not match its ``.pub`` is refused.
"""

from __future__ import annotations

import builtins
import json
import re
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from securenb.core.keys.cosign import encrypt_cosign_key
from securenb.core.keys.pem import load_private_key, load_public_key, read_key_file
from securenb.core.keys.purposes import PURPOSES, USES, Purpose, fixed_purpose
from securenb.core.keys.types import ALGORITHMS, Algorithm, PrivateKey, PublicKey
from securenb.errors import KeyError_, at

PROVIDER = "keystore"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")

Passphrase = str | bytes


@dataclass(frozen=True)
class KeyInfo:
    """What ``keys list`` shows: never a secret, only names and public facts."""

    name: str
    algorithm: Algorithm
    key_id: str
    created: str
    provider: str
    purpose: Purpose | None = None

    def to_json(self) -> dict[str, str | None]:
        return asdict(self)


def validate_name(name: str) -> str:
    """Refuse names that could escape the folder or confuse a key reference."""
    if not _is_valid(name):
        raise KeyError_(
            f"invalid key name {name!r}: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit (no path separators)"
        )
    return name


def _is_valid(name: str) -> bool:
    return bool(_NAME.fullmatch(name)) and ".." not in name


class KeyStore:
    """The encrypted keys in ``directory``."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)

    def key_path(self, name: str) -> Path:
        return self.directory / f"{validate_name(name)}.key"

    def pub_path(self, name: str) -> Path:
        return self.directory / f"{validate_name(name)}.pub"

    def _meta_path(self, name: str) -> Path:
        return self.directory / f"{validate_name(name)}.json"

    def exists(self, name: str) -> bool:
        return self.key_path(name).exists() or self.pub_path(name).exists()

    def create(
        self,
        name: str,
        algorithm: Algorithm = "ecdsa-p256",
        passphrase: Passphrase | None = None,
        *,
        overwrite: bool = False,
        purpose: Purpose = "release",
    ) -> KeyInfo:
        """Generate a key for ``purpose`` and store it encrypted under ``passphrase``."""
        if algorithm not in ALGORITHMS:
            raise KeyError_(f"unknown key algorithm {algorithm!r}: choose one of {ALGORITHMS}")
        secret = _new_passphrase(passphrase, name)
        _check_purpose(name, purpose)
        self._refuse_overwrite(name, overwrite)
        return self._write(name, PrivateKey.generate(algorithm), secret, purpose)

    def import_key(
        self,
        source: Path | str | bytes,
        name: str,
        passphrase_in: Passphrase | None = None,
        passphrase_out: Passphrase | None = None,
        *,
        overwrite: bool = False,
        purpose: Purpose = "release",
    ) -> KeyInfo:
        """Store a PEM (PKCS#8, SEC1) or cosign private key, re-encrypted under ``passphrase_out``.

        ``source`` is a file path or the key's bytes; ``passphrase_in`` opens it
        when it is encrypted.
        """
        secret = _new_passphrase(passphrase_out, name)
        _check_purpose(name, purpose)
        self._refuse_overwrite(name, overwrite)
        if isinstance(source, bytes):
            data, label = source, f"key imported as {name!r}"
        else:
            data, label = read_key_file(Path(source)), str(source)
        key = load_private_key(data, _as_bytes(passphrase_in), label)
        return self._write(name, key, secret, purpose)

    def load(self, name: str, passphrase: Passphrase) -> PrivateKey:
        """Decrypt key ``name``; raises KeyError_ "wrong passphrase for <file>" on a bad one."""
        path = self.key_path(name)
        if not path.exists():
            raise KeyError_(at(self.directory, f"no key named {name!r}"))
        secret = _as_bytes(passphrase)
        if secret is None:
            raise KeyError_(at(path, "a passphrase is needed to unlock this key"))
        key = load_private_key(read_key_file(path), secret, str(path))
        if self.pub_path(name).exists() and self.public(name).key_id != key.key_id:
            raise KeyError_(
                at(path, f"does not match {self.pub_path(name).name}: the key files were changed")
            )
        return key

    def public(self, name: str) -> PublicKey:
        """The public half of ``name``, read without any passphrase."""
        path = self.pub_path(name)
        if not path.exists():
            raise KeyError_(at(self.directory, f"no public key named {name!r}"))
        return load_public_key(read_key_file(path), str(path))

    def export_public(self, name: str) -> bytes:
        """SPKI PEM of ``name``, as cosign, openssl and model-signing read it."""
        return self.public(name).pem()

    def info(self, name: str) -> KeyInfo:
        public = self.public(name)
        return KeyInfo(name, public.algorithm, public.key_id, self._created(name), PROVIDER,
                       self.purpose(name))

    def purpose(self, name: str) -> Purpose | None:
        """What key ``name`` may sign; None for a key made before key separation.

        The default names (``workspace``, ``release``, ``blob``) have a fixed purpose,
        whatever ``NAME.json`` says.
        """
        fixed = fixed_purpose(validate_name(name))
        if fixed is not None:
            return fixed
        value = self._meta(name).get("purpose")
        return value if value in PURPOSES else None

    def set_purpose(self, name: str, purpose: Purpose) -> None:
        """Record ``purpose`` for a key made before key separation (``keys migrate``)."""
        _check_purpose(name, purpose)
        from securenb.core.fsutil import atomic_write_bytes

        meta = {**self._meta(name), "created": self._created(name), "purpose": purpose}
        atomic_write_bytes(self._meta_path(name), json.dumps(meta).encode(), 0o644)

    def list(self) -> builtins.list[KeyInfo]:
        """Every key in the folder, by name."""
        if not self.directory.is_dir():
            return []
        names = sorted(p.stem for p in self.directory.glob("*.key") if _is_valid(p.stem))
        return [self.info(name) for name in names]

    def _refuse_overwrite(self, name: str, overwrite: bool) -> None:
        if not overwrite and self.exists(name):
            raise KeyError_(
                at(self.key_path(name), f"key {name!r} already exists; refusing to overwrite it")
            )

    def _write(self, name: str, key: PrivateKey, secret: bytes, purpose: Purpose) -> KeyInfo:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        der = key.key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        encrypted = encrypt_cosign_key(der, secret)
        # Deferred (sqlite3, tempfile): writing keys only. What a process imports before
        # it unlocks a key adds to the KDF's 64 MiB in its peak memory (docs/signing.md).
        from securenb.core.fsutil import atomic_write_bytes
        from securenb.core.store import now_rfc3339

        created = now_rfc3339()
        atomic_write_bytes(self.pub_path(name), key.public.pem(), 0o644)
        meta = {"created": created, "purpose": purpose}
        atomic_write_bytes(self._meta_path(name), json.dumps(meta).encode(), 0o644)
        atomic_write_bytes(self.key_path(name), encrypted, 0o600)
        return KeyInfo(name, key.algorithm, key.key_id, created, PROVIDER, purpose)

    def _meta(self, name: str) -> dict[str, object]:
        try:
            meta = json.loads(self._meta_path(name).read_text())
        except (OSError, ValueError):
            return {}
        return meta if isinstance(meta, dict) else {}

    def _created(self, name: str) -> str:
        """Creation time from ``NAME.json``; the ``.pub`` file's time for hand-placed keys."""
        created = self._meta(name).get("created")
        if isinstance(created, str):
            return created
        mtime = self.pub_path(name).stat().st_mtime
        return datetime.fromtimestamp(mtime, timezone.utc).isoformat().replace("+00:00", "Z")


def _check_purpose(name: str, purpose: str) -> None:
    """A key has one purpose; the default names keep theirs."""
    if purpose not in PURPOSES:
        raise KeyError_(f"unknown key purpose {purpose!r}: choose one of {PURPOSES}")
    fixed = fixed_purpose(validate_name(name))
    if fixed is not None and fixed != purpose:
        raise KeyError_(f"key name {name!r} is reserved for the {fixed} key "
                        f"({USES[fixed]}); choose another name")


def _as_bytes(passphrase: Passphrase | None) -> bytes | None:
    return passphrase.encode() if isinstance(passphrase, str) else passphrase


def _new_passphrase(passphrase: Passphrase | None, name: str) -> bytes:
    secret = _as_bytes(passphrase)
    if not secret:
        raise KeyError_(f"key {name!r} needs a non-empty passphrase to be stored encrypted")
    return secret
