"""The data key of one dataset: secret bytes that never print.

A fresh key per dataset limits what one leaked key exposes. It exists
unwrapped only in the process that decrypts; to decrypt inside a sandbox the
host hands it over as a secret (``to_secret`` / ``from_env``) and the KEK
never leaves the host.
"""

from __future__ import annotations

import base64
import binascii
import os

from securenb.errors import KeyError_, at

DATA_KEY_SIZE = 32
DATA_KEY_ENV = "SECURENB_DATA_KEY"


class DataKey:
    """Key material for the streaming AEAD; ``repr`` and ``str`` are redacted."""

    __slots__ = ("_material",)

    def __init__(self, material: bytes) -> None:
        if len(material) < 16:
            raise KeyError_(f"a data key needs at least 16 bytes, got {len(material)}")
        self._material = bytes(material)

    @classmethod
    def generate(cls, size: int = DATA_KEY_SIZE) -> DataKey:
        return cls(os.urandom(size))

    @property
    def material(self) -> bytes:
        return self._material

    def __repr__(self) -> str:
        return "DataKey(<redacted>)"

    __str__ = __repr__

    def to_secret(self) -> str:
        """Base64 text for a secret channel into a sandbox (never a log or a file)."""
        return base64.b64encode(self._material).decode()

    @classmethod
    def from_secret(cls, text: str, source: str = "data key") -> DataKey:
        try:
            return cls(base64.b64decode(text.strip(), validate=True))
        except (binascii.Error, ValueError):
            raise KeyError_(at(source, "not a base64 data key")) from None

    @classmethod
    def from_env(cls, name: str = DATA_KEY_ENV, *, remove: bool = True) -> DataKey:
        """Read the key a sandbox was given; by default drop it from the environment
        so that child processes (the user's code) do not inherit it."""
        text = os.environ.pop(name, None) if remove else os.environ.get(name)
        if not text:
            raise KeyError_(at(f"${name}", "no data key in the environment"))
        return cls.from_secret(text, f"${name}")
