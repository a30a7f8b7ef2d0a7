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


Output = tuple[str, dict[str, Any]]  # (message type, content), as the notebook shows it


@dataclass
class _Held:
    """Output held back because it ends with the start of a secret: a stream's tail, or a
    whole display (its texts in ``texts``, put back into ``content`` on release)."""

    kind: str
    content: dict[str, Any]
    texts: list[str]
    grown: bool = False  # took the middle piece of a secret from the latest output


class Redactor:
    """Replaces secret values in text, also in values split across outputs.

    Everything a sandbox emits (stream chunks, the texts of a display: each MIME
    representation that is a string) is one text to the reader, so a value begun in one
    output and finished in the next is redacted whatever their kinds: output that ends with
    the start of a secret is held back (a stream's tail; a display whole) until the next
    output shows whether it goes on. (Strings nested in JSON, and keys, are redacted where
    they hold a whole value: checking each against every other would let one display of
    many short strings stall the notebook.)"""

    def __init__(self, secrets: dict[str, str]) -> None:
        ordered = sorted(secrets.items(), key=lambda kv: -len(kv[1]))
        self._pairs = [(value, REDACTED.format(name=name)) for name, value in ordered]
        self._held: list[_Held] = []  # in the order they came

    def __bool__(self) -> bool:
        return bool(self._pairs)

    def fresh(self) -> Redactor:
        """Another stream over the same secrets, for another copy of the output (it holds
        back its own tails)."""
        other = Redactor({})
        other._pairs = list(self._pairs)
        return other

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

    def feed(self, stream: str, chunk: str) -> list[Output]:
        """What may be shown now of a chunk of stream ``stream`` (and of held output)."""
        same = [h for h in self._held if h.kind == "stream" and h.content["name"] == stream]
        self._held = [h for h in self._held if h not in same]
        chunk = self._join(chunk)
        shown = self._release()
        text = self.text("".join(h.texts[0] for h in same) + chunk)
        hold = self._held_tail(text)
        if hold:
            self._held.append(_Held("stream", {"name": stream}, [text[-hold:]]))
            text = text[:-hold]
        return shown + ([("stream", {"name": stream, "text": text})] if text else [])

    def display(self, kind: str, content: dict[str, Any]) -> list[Output]:
        """What may be shown now of a display (display_data, update_display_data,
        execute_result, after ``display.inert``) and of held output."""
        content = _joined(content)
        texts = [self.text(self._join(s)) for s in _texts(content)]
        shown = self._release()
        if any(self._held_tail(s) for s in texts):
            self._held.append(_Held(kind, content, texts))
            return shown
        return [*shown, (kind, _with_texts(content, texts))]

    def other(self, kind: str, content: dict[str, Any]) -> list[Output]:
        """An output without text (clear_output): it ends what held displays could join."""
        return [*self._release(), (kind, content)]

    def flush(self) -> list[Output]:
        """Everything still held back, in order, at the end of a cell."""
        held, self._held = self._held, []
        return [_shown(h, [self.text(t) for t in h.texts]) for h in held]

    def _join(self, chunk: str) -> str:
        """``chunk`` after the secrets that held output began and it goes on with (the held
        output then ends with the mark, or grows by the middle piece ``chunk`` is)."""
        for held in self._held:
            for i, text in enumerate(held.texts):
                before = chunk
                held.texts[i], chunk = self._across(text, chunk)
                held.grown = held.grown or (before != "" and chunk == "" and
                                            held.texts[i].endswith(before))
        return chunk

    def _release(self) -> list[Output]:
        """Held displays, now that the output after them came (unless it was the middle
        piece of a secret they began: they wait for the next one)."""
        shown = [_shown(h, h.texts) for h in self._held if h.kind != "stream" and not h.grown]
        self._held = [h for h in self._held if h.kind == "stream" or h.grown]
        for held in self._held:
            held.grown = False
        return shown

    def _across(self, held: str, chunk: str) -> tuple[str, str]:
        """(held, chunk) after a secret whose start is ``held`` went on in ``chunk``, written
        in another output: finished there, it becomes the mark; continued but not finished
        (a secret in three pieces), the piece joins the held start, so no output ever shows
        a piece of it that the others would complete."""
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

    def _held_tail(self, text: str) -> int:
        longest = 0
        for value, _ in self._pairs:
            for size in range(min(len(value) - 1, len(text)), longest, -1):
                if value.startswith(text[-size:]):
                    longest = size
                    break
        return longest


def _shown(held: _Held, texts: list[str]) -> Output:
    if held.kind == "stream":
        return "stream", {"name": held.content["name"], "text": texts[0]}
    return held.kind, _with_texts(held.content, texts)


def _joined(content: dict[str, Any]) -> dict[str, Any]:
    """``content`` with each MIME representation given as a list of lines as one string."""
    data = content.get("data")
    if not isinstance(data, dict):
        return content
    return {**content, "data": {
        mime: "".join(v) if isinstance(v, list) and v and all(isinstance(x, str) for x in v)
        else v for mime, v in data.items()}}


def _texts(content: dict[str, Any]) -> list[str]:
    """The texts of a display: its MIME representations that are strings, in order."""
    data = content.get("data")
    return [v for v in data.values() if isinstance(v, str)] if isinstance(data, dict) else []


def _with_texts(content: dict[str, Any], texts: list[str]) -> dict[str, Any]:
    """``content`` with its texts (see ``_texts``) replaced, in order, by ``texts``."""
    if not texts:
        return content
    given = iter(texts)
    return {**content, "data": {mime: next(given) if isinstance(v, str) else v
                                for mime, v in content["data"].items()}}
