"""ONNX models: where their tensors' external data lives.

A tensor may say its bytes are in another file (``data_location = EXTERNAL``); loaders
join that path to the model's folder. An absolute path, ``..`` or a symbolic link that
leaves the folder turns a model download into a read of any file the user can read. The
graph, its subgraphs (If/Loop bodies), training graphs and functions are all walked;
tensor payloads are skipped by offset.
"""

from __future__ import annotations

import os
import re

from securenb.scan.context import Ctx
from securenb.scan.formats.protobuf import LEN, VARINT, ProtoError, fields, text
from securenb.scan.source import Source

_MODEL_FIELDS = frozenset({1, 2, 3, 4, 5, 6, 7, 8, 14, 20, 25})
_STANDARD_DOMAINS = frozenset(
    {
        "",
        "ai.onnx",
        "ai.onnx.ml",
        "ai.onnx.preview.training",
        "com.microsoft",
        "com.microsoft.nchwc",
    }
)
MAX_DEPTH = 64


def looks_like_onnx(src: Source) -> bool:
    """A ModelProto: an IR version, a graph, and only ModelProto's field numbers."""
    seen: set[int] = set()
    try:
        for number, wire, _, _ in fields(src, 0, src.size):
            if number not in _MODEL_FIELDS:
                return False
            seen.add(number)
            if (number == 7 and wire != LEN) or (number == 1 and wire != VARINT):
                return False
    except ProtoError:
        return False
    return {1, 7} <= seen


class _Walk:
    def __init__(self, src: Source, ctx: Ctx) -> None:
        self.src = src
        self.ctx = ctx
        self.domains: set[str] = set()
        self.locations: set[str] = set()
        on_disk = ctx.member is None
        self.folder = os.path.dirname(os.path.abspath(ctx.file.path)) if on_disk else None

    def model(self) -> None:
        for number, wire, at, n in fields(self.src, 0, self.src.size):
            if wire != LEN:
                continue
            if number == 7:
                self.graph(at, n, 0)
            elif number == 20:
                for sub, w, a, m in fields(self.src, at, at + n):
                    if sub in (1, 2) and w == LEN:
                        self.graph(a, m, 1)
            elif number == 25:
                for sub, w, a, m in fields(self.src, at, at + n):
                    if sub == 7 and w == LEN:
                        self.node(a, m, 1)

    def graph(self, at: int, n: int, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise ProtoError("subgraphs nested too deeply")
        for number, wire, a, m in fields(self.src, at, at + n):
            if wire != LEN:
                continue
            if number == 1:
                self.node(a, m, depth)
            elif number == 5:
                self.tensor(a, m)
            elif number == 15:
                for sub, w, b, k in fields(self.src, a, a + m):
                    if sub in (1, 2) and w == LEN:
                        self.tensor(b, k)

    def node(self, at: int, n: int, depth: int) -> None:
        for number, wire, a, m in fields(self.src, at, at + n):
            if wire != LEN:
                continue
            if number == 7:
                domain = text(self.src, a, m)
                if domain not in _STANDARD_DOMAINS and domain not in self.domains:
                    self.domains.add(domain)
                    self.ctx.report(
                        "onnx.custom-domain",
                        f"operators from domain {domain!r} need a native library",
                        construct=domain,
                    )
            elif number == 5:
                self.attribute(a, m, depth)

    def attribute(self, at: int, n: int, depth: int) -> None:
        for number, wire, a, m in fields(self.src, at, at + n):
            if wire != LEN:
                continue
            if number in (5, 10):
                self.tensor(a, m)
            elif number in (6, 11):
                self.graph(a, m, depth + 1)
            elif number in (22, 23):
                for sub, w, b, k in fields(self.src, a, a + m):
                    if sub in (1, 2) and w == LEN:
                        self.tensor(b, k)

    def tensor(self, at: int, n: int) -> None:
        name, location, external = "", None, False
        for number, wire, a, m in fields(self.src, at, at + n):
            if number == 8 and wire == LEN:
                name = text(self.src, a, m)
            elif number == 14 and wire == VARINT:
                external = a == 1
            elif number == 13 and wire == LEN:
                key = value = ""
                for sub, w, b, k in fields(self.src, a, a + m):
                    if sub == 1 and w == LEN:
                        key = text(self.src, b, k)
                    elif sub == 2 and w == LEN:
                        value = text(self.src, b, k)
                if key == "location":
                    location = value
        if external or location is not None:
            self.external(name, location or "")

    def external(self, tensor: str, location: str) -> None:
        if location in self.locations:
            return
        self.locations.add(location)
        parts = re.split(r"[\\/]", location)
        lexical_escape = (
            not location
            or "\0" in location
            or location.startswith(("/", "\\", "~"))
            or bool(re.match(r"[A-Za-z]:", location))
            or ".." in parts
        )
        if not lexical_escape and self.folder is not None:
            target = os.path.realpath(os.path.join(self.folder, location))
            root = os.path.realpath(self.folder)
            if os.path.commonpath([target, root]) != root:
                lexical_escape = True
            else:
                self.ctx.file.referenced_data.add(target)
        if lexical_escape:
            self.ctx.report(
                "onnx.external-data-escape",
                f"tensor {tensor!r} reads external data from {location!r}",
                construct=location,
            )
        else:
            self.ctx.report(
                "onnx.external-data", f"tensor {tensor!r} data in {location!r}", construct=location
            )


def scan_onnx(src: Source, ctx: Ctx) -> None:
    ctx.file.formats.append("onnx")
    try:
        _Walk(src, ctx).model()
    except ProtoError as exc:
        ctx.report("onnx.malformed", str(exc))
