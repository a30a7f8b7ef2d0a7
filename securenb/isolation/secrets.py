"""Secrets for sandboxed code: resolved in the parent, injected only into the sandbox.

``--secret NAME`` takes the value of the environment variable NAME;
``--secret NAME=env:VAR``, ``NAME=keyring:ENTRY`` (OS keyring, service
``securenb``, like the key providers) and ``NAME=file:PATH`` name the source
explicitly. The value becomes the environment variable NAME inside the sandbox
only. Records hold the name and source kind, never the value; every stream of
output coming back is passed through a ``Redactor``.

Redaction guards against accidental disclosure (a cell printing a token or a
traceback quoting it). Code that is given a secret can always encode it before
printing it; do not hand secrets to code you would not trust with them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from securenb.core.keys.providers import KEYRING_SERVICE
from securenb.isolation.errors import IsolationError

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
REDACTED = "[REDACTED:{name}]"
MIN_SECRET_LENGTH = 4


@dataclass(frozen=True)
class SecretRef:
    """What a record may say about a secret: its name and where it came from."""

    name: str
    source: str  # env | keyring | file
    location: str

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "source": self.source}


def parse_ref(text: str) -> SecretRef:
    name, sep, ref = text.partition("=")
    if not _NAME.match(name):
        raise IsolationError(f"--secret {text!r}: {name!r} is not a valid variable name")
    if not sep:
        return SecretRef(name, "env", name)
    source, colon, location = ref.partition(":")
    if not colon or source not in ("env", "keyring", "file") or not location:
        raise IsolationError(
            f"--secret {name}=...: expected env:VAR, keyring:ENTRY or file:PATH"
        )
    return SecretRef(name, source, location)


def resolve(ref: SecretRef) -> str:
    """The secret's value; an error names the source but never shows a value."""
    if ref.source == "env":
        value = os.environ.get(ref.location)
        if value is None:
            raise IsolationError(f"secret {ref.name}: environment variable {ref.location} is unset")
    elif ref.source == "keyring":
        import keyring
        from keyring.errors import KeyringError

        try:
            found = keyring.get_password(KEYRING_SERVICE, ref.location)
        except KeyringError as exc:
            raise IsolationError(f"secret {ref.name}: the OS keyring failed ({exc})") from None
        if found is None:
            raise IsolationError(f"secret {ref.name}: no keyring entry {ref.location!r} "
                                 f"(service {KEYRING_SERVICE!r})")
        value = str(found)
    else:
        path = Path(ref.location).expanduser()
        try:
            value = path.read_text().rstrip("\n")
        except OSError as exc:
            raise IsolationError(
                f"secret {ref.name}: cannot read {path} ({exc.strerror})"
            ) from None
    if len(value) < MIN_SECRET_LENGTH:
        raise IsolationError(
            f"secret {ref.name}: shorter than {MIN_SECRET_LENGTH} characters; it could not be "
            "redacted from output without mangling it"
        )
    return value


class Redactor:
    """Replaces secret values in text; ``feed`` handles values split across chunks."""

    def __init__(self, secrets: dict[str, str]) -> None:
        ordered = sorted(secrets.items(), key=lambda kv: -len(kv[1]))
        self._pairs = [(value, REDACTED.format(name=name)) for name, value in ordered]
        self._pending: dict[str, str] = {}

    def __bool__(self) -> bool:
        return bool(self._pairs)

    def text(self, text: str) -> str:
        for value, mark in self._pairs:
            if value in text:
                text = text.replace(value, mark)
        return text

    def value(self, obj: Any) -> Any:
        """Redact every string inside a JSON value (display data, tracebacks)."""
        if isinstance(obj, str):
            return self.text(obj)
        if isinstance(obj, list):
            return [self.value(v) for v in obj]
        if isinstance(obj, dict):  # keys too: a secret may be a metadata or MIME key
            return {self.text(k) if isinstance(k, str) else k: self.value(v)
                    for k, v in obj.items()}
        return obj

    def feed(self, stream: str, chunk: str) -> str:
        """Redacted text safe to emit now; holds back a tail that may begin a secret.

        A secret begun on one stream (held back there) and finished on another is
        redacted too: the held beginning becomes the mark, the end is dropped."""
        for other, held in list(self._pending.items()):
            if other != stream:
                self._pending[other], chunk = self._across(held, chunk)
        text = self.text(self._pending.pop(stream, "") + chunk)
        hold = self._held_tail(text)
        if hold:
            self._pending[stream] = text[-hold:]
            return text[:-hold]
        return text

    def _across(self, held: str, chunk: str) -> tuple[str, str]:
        """(held, chunk) after a secret whose start is ``held`` went on in ``chunk``, written
        on another stream: finished there, it becomes the mark; continued but not finished
        (a secret in three pieces), the piece joins the held start, so no stream ever shows
        a piece of it that the other streams would complete."""
        for value, mark in self._pairs:
            for cut in range(min(len(value) - 1, len(held)), 0, -1):
                if not held.endswith(value[:cut]):
                    continue
                rest = value[cut:]
                if chunk.startswith(rest):
                    return held[:-cut] + mark, chunk[len(rest):]
                if chunk and rest.startswith(chunk):
                    return held + chunk, ""
        return held, chunk

    def flush(self) -> Iterable[tuple[str, str]]:
        """What is still held back, per stream, at the end of a cell."""
        pending, self._pending = self._pending, {}
        return [(stream, self.text(text)) for stream, text in pending.items() if text]

    def _held_tail(self, text: str) -> int:
        longest = 0
        for value, _ in self._pairs:
            for size in range(min(len(value) - 1, len(text)), longest, -1):
                if value.startswith(text[-size:]):
                    longest = size
                    break
        return longest
