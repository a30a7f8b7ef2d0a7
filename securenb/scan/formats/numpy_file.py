"""NumPy ``.npy``: the header says whether the array holds Python objects.

Object arrays are stored as a pickle right after the header and ``np.load(...,
allow_pickle=True)`` unpickles it; every other dtype is raw data that is never read here.
The header is a Python literal: it is parsed with ``ast.literal_eval`` (no evaluation) and
only up to a size limit.
"""

from __future__ import annotations

import ast
from typing import Any

from securenb.scan.context import Ctx
from securenb.scan.formats.pickle_file import scan_pickle_at
from securenb.scan.source import Source

MAGIC = b"\x93NUMPY"
MAX_HEADER = 1 << 20


def _has_object(descr: Any, depth: int = 0) -> bool | None:
    """Whether a dtype description contains the object type; None if not understood."""
    if depth > 32:
        return None
    if isinstance(descr, str):
        return descr.lstrip("<>|=").startswith("O")
    if isinstance(descr, list):
        found = False
        for field in descr:
            if not isinstance(field, tuple) or len(field) < 2:
                return None
            inner = _has_object(field[1], depth + 1)
            if inner is None:
                return None
            found = found or inner
        return found
    return None


class _Reader:
    """A :class:`Source` as the file object numpy's header reader expects."""

    def __init__(self, src: Source) -> None:
        self.src = src
        self.pos = 0

    def read(self, n: int = -1) -> bytes:
        data = self.src.read_at(self.pos, MAX_HEADER + 16 if n is None or n < 0 else n)
        self.pos += len(data)
        return data


def read_header(src: Source) -> tuple[int, bool] | str:
    """(offset of the data, whether it is a pickle of objects), or what is wrong.

    numpy's own reader parses the header and the dtype (``'object'``, ``'O'``, structured
    dtypes, ...), so the answer is the one ``np.load`` will act on; without numpy the
    literal is read here (and ``np.load`` could not run anyway).
    """
    try:
        from numpy.lib import format as npy_format
    except ImportError:
        return _read_header_literal(src)
    reader = _Reader(src)
    try:
        version = npy_format.read_magic(reader)
        if version == (1, 0):
            _, _, dtype = npy_format.read_array_header_1_0(reader, max_header_size=MAX_HEADER)
        elif version == (2, 0):
            _, _, dtype = npy_format.read_array_header_2_0(reader, max_header_size=MAX_HEADER)
        else:
            return _read_header_literal(src)
    except Exception as exc:  # whatever numpy rejects, np.load rejects too
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
        return f".npy header rejected by numpy: {reason[:200]}"
    return reader.pos, bool(dtype.hasobject)


def _read_header_literal(src: Source) -> tuple[int, bool] | str:
    head = src.read_at(0, 12)
    major = head[6] if len(head) > 6 else 0
    if major == 1:
        hlen, start = int.from_bytes(head[8:10], "little"), 10
    elif major in (2, 3):
        hlen, start = int.from_bytes(head[8:12], "little"), 12
    else:
        return f"unsupported .npy version {major}"
    if hlen > MAX_HEADER or start + hlen > src.size:
        return f".npy header of {hlen} bytes is too large or truncated"
    raw = src.read_at(start, hlen)
    try:
        header = ast.literal_eval(raw.decode("utf-8" if major == 3 else "latin-1"))
    except (ValueError, SyntaxError, MemoryError, RecursionError, UnicodeDecodeError) as exc:
        return f".npy header is not a literal: {exc}"
    if not isinstance(header, dict) or "descr" not in header:
        return ".npy header has no dtype description"
    has_object = _has_object(header["descr"])
    if has_object is None:
        return ".npy dtype description not understood"
    return start + hlen, has_object


def scan_npy(src: Source, ctx: Ctx) -> None:
    header = read_header(src)
    if isinstance(header, str):
        ctx.report("numpy.malformed", header)
        return
    data, has_object = header
    if not has_object:
        return
    ctx.file.formats.append("npy-object")
    scan_pickle_at(src, ctx, data, "object array pickle")
