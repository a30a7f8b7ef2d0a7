"""Protocol-buffer wire format, read lazily: tags and lengths, never the tensor payloads.

ONNX models and TensorFlow SavedModels are protobuf messages whose large fields are raw
tensor bytes. Walking tags and skipping length-delimited fields by offset keeps the cost
proportional to the number of fields, not to the size of the weights. No schema and no
protobuf library are needed for the few fields the scanners look at.
"""

from __future__ import annotations

from collections.abc import Iterator

from securenb.scan.source import Cursor, Source

SMALL = 4 << 20
VARINT, I64, LEN, I32 = 0, 1, 2, 5


class ProtoError(Exception):
    pass


def _varint_bytes(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ProtoError("truncated or overlong varint")
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7


def fields(src: Source, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """(number, wire type, value or offset, length) of each field in ``[start, end)``."""
    if end - start <= SMALL:
        yield from _fields_in_memory(src.read_at(start, end - start), start, end - start)
    else:
        yield from _fields_lazy(src, start, end)


def _fields_in_memory(data: bytes, base: int, size: int) -> Iterator[tuple[int, int, int, int]]:
    if len(data) != size:
        raise ProtoError("message runs past the end of the file")
    pos = 0
    while pos < size:
        key, pos = _varint_bytes(data, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise ProtoError("field number 0")
        if wire == VARINT:
            value, pos = _varint_bytes(data, pos)
            yield number, wire, value, 0
        elif wire == LEN:
            n, pos = _varint_bytes(data, pos)
            if pos + n > size:
                raise ProtoError("field runs past its message")
            yield number, wire, base + pos, n
            pos += n
        elif wire in (I64, I32):
            pos += 8 if wire == I64 else 4
            if pos > size:
                raise ProtoError("field runs past its message")
            yield number, wire, 0, 0
        else:
            raise ProtoError(f"unsupported wire type {wire}")


def _fields_lazy(src: Source, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    cur = Cursor(src, start)

    def varint() -> int:
        value = shift = 0
        while True:
            b = cur.byte()
            if b < 0 or shift > 63:
                raise ProtoError("truncated or overlong varint")
            value |= (b & 0x7F) << shift
            if b < 0x80:
                return value
            shift += 7

    while cur.tell() < end:
        key = varint()
        number, wire = key >> 3, key & 7
        if number == 0:
            raise ProtoError("field number 0")
        if wire == VARINT:
            yield number, wire, varint(), 0
        elif wire == LEN:
            n = varint()
            at = cur.tell()
            if at + n > end:
                raise ProtoError("field runs past its message")
            cur.seek(at + n)
            yield number, wire, at, n
        elif wire in (I64, I32):
            cur.skip(8 if wire == I64 else 4)
            yield number, wire, 0, 0
        else:
            raise ProtoError(f"unsupported wire type {wire}")
    if cur.tell() != end:
        raise ProtoError("field runs past its message")


def text(src: Source, offset: int, length: int, limit: int = 1 << 20) -> str:
    """A string field (bounded)."""
    if length > limit:
        raise ProtoError(f"string field of {length} bytes")
    return src.read_at(offset, length).decode("utf-8", "replace")
