"""GGUF (llama.cpp): header sanity and the chat templates it carries.

The metadata is a list of typed key/value pairs whose counts and lengths come from the
file; each is bounded before anything is allocated. Tensor infos must describe data that
lies inside the file at the declared alignment. ``tokenizer.chat_template*`` values are
checked for template injection.
"""

from __future__ import annotations

import struct

from securenb.scan.context import Ctx
from securenb.scan.formats.chat_template import check_chat_template
from securenb.scan.source import Cursor, Source

MAGIC = b"GGUF"
_SCALAR = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_STRING, _ARRAY = 8, 9
# ggml type -> (elements per block, bytes per block) for the types whose layout is stable
_GGML = {
    0: (1, 4),
    1: (1, 2),
    2: (32, 18),
    3: (32, 20),
    6: (32, 22),
    7: (32, 24),
    8: (32, 34),
    10: (256, 84),
    11: (256, 110),
    12: (256, 144),
    13: (256, 176),
    14: (256, 210),
    24: (1, 1),
    25: (1, 2),
    26: (1, 4),
    27: (1, 8),
    28: (1, 8),
    30: (1, 2),
}
MAX_KV = 1 << 20
MAX_TENSORS = 1 << 22
MAX_STRING = 64 << 20


class GGUFError(Exception):
    pass


class _Reader:
    def __init__(self, src: Source, limit: int) -> None:
        self.cur = Cursor(src, 0)
        self.limit = limit
        self.wide = True

    def _room(self, n: int) -> None:
        if n > self.cur.remaining() or self.cur.tell() + n > self.limit:
            raise GGUFError("header runs past the end of the file or the header limit")

    def take(self, n: int) -> bytes:
        self._room(n)
        return self.cur.take(n)

    def skip(self, n: int) -> None:
        self._room(n)
        self.cur.skip(n)

    def u32(self) -> int:
        return int(struct.unpack("<I", self.take(4))[0])

    def count(self) -> int:
        return int(struct.unpack("<Q", self.take(8))[0]) if self.wide else self.u32()

    def string(self, keep: bool) -> str | None:
        n = self.count()
        if n > MAX_STRING:
            raise GGUFError(f"string of {n} bytes")
        if keep:
            return self.take(n).decode("utf-8", "replace")
        self.skip(n)
        return None

    def value(self, kind: int, keep: bool, depth: int = 0) -> object:
        if kind in _SCALAR:
            raw = self.take(_SCALAR[kind])
            return int.from_bytes(raw, "little") if kind in (4, 10) else None
        if kind == _STRING:
            return self.string(keep)
        if kind == _ARRAY and depth < 4:
            inner, n = self.u32(), self.count()
            if inner in _SCALAR:
                self.skip(n * _SCALAR[inner])
                return None
            self._room(n * 4)  # every element takes at least four bytes
            for _ in range(n):
                self.value(inner, False, depth + 1)
            return None
        raise GGUFError(f"unknown value type {kind}")


def scan_gguf(src: Source, ctx: Ctx) -> None:
    try:
        _scan(src, ctx)
    except (GGUFError, struct.error) as exc:
        ctx.report("gguf.malformed", str(exc))


def _scan(src: Source, ctx: Ctx) -> None:
    r = _Reader(src, ctx.options.max_header_bytes)
    r.take(4)
    version = r.u32()
    if version not in (1, 2, 3):
        raise GGUFError(f"unsupported GGUF version {version}")
    r.wide = version >= 2
    n_tensors, n_kv = r.count(), r.count()
    if n_tensors > MAX_TENSORS or n_kv > MAX_KV:
        raise GGUFError(f"{n_tensors} tensors / {n_kv} keys exceed the limits")
    alignment = 32
    for _ in range(n_kv):
        key = r.string(True) or ""
        kind = r.u32()
        template = key.startswith("tokenizer.chat_template")
        value = r.value(kind, keep=template)
        if template and isinstance(value, str):
            check_chat_template(value, ctx, key)
        if key == "general.alignment" and isinstance(value, int):
            if value <= 0 or value & (value - 1):
                raise GGUFError(f"alignment {value} is not a power of two")
            alignment = value
    tensors = []
    for _ in range(n_tensors):
        name = r.string(True) or ""
        n_dims = r.u32()
        if n_dims > 8:
            raise GGUFError(f"tensor {name!r} has {n_dims} dimensions")
        dims = [r.count() for _ in range(n_dims)]
        kind, offset = r.u32(), r.count()
        tensors.append((name, dims, kind, offset))
    data_start = -(-r.cur.tell() // alignment) * alignment
    data_len = src.size - data_start
    for name, dims, kind, offset in tensors:
        nbytes = 0
        if kind in _GGML:
            block, size = _GGML[kind]
            count = 1
            for d in dims:
                count *= d
            nbytes = -(-count // block) * size
        if offset % alignment or offset + nbytes > data_len:
            ctx.report(
                "gguf.bad-offsets",
                f"tensor {name!r} at {offset} (+{nbytes}) lies outside the data or is unaligned",
                construct=name,
            )
            return
