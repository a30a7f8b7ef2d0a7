"""Compressed wrappers (gzip, bzip2, xz, lzma, zlib): inflated into a capped temp file and
scanned inside; formats no standard library module reads (7z, zstd, lz4, rar) are UNKNOWN.

joblib's ``compress=`` files are exactly such wrappers around a pickle, and pandas
inflates ``.pkl.gz`` by itself: passing them as clean because the bytes did not look like
a pickle is one of the fail-open paths this module closes. Inflation stops at the file's
budget (total size and ratio), so a bomb ends as UNKNOWN, never as an exhausted disk.
"""

from __future__ import annotations

import bz2
import lzma
import zlib
from collections.abc import Callable
from typing import Any

from securenb.scan.context import Ctx
from securenb.scan.source import CHUNK, LimitExceeded, Source, spill


def inflate(
    raw: Source,
    ctx: Ctx,
    new: Callable[[], Any],
    *,
    members: bytes | None = None,
    declared: int | None = None,
) -> Source:
    """Stream ``raw`` through decompressors from ``new()`` into a budgeted temp file.

    ``members``: the magic of a format that allows several streams back to back (gzip,
    bzip2, xz); a new stream starts when one ends and the magic follows. ``declared``: the
    size the container promises; more than that is refused, and a promise beyond the
    budget is refused before inflating anything.
    """
    limit = ctx.inflate_budget(raw.size)
    if declared is not None:
        if declared > limit:
            raise LimitExceeded(f"declares {declared} bytes from {raw.size} (bomb)")
        limit = declared
    state: dict[str, Any] = {"d": new(), "pos": 0, "buf": b""}

    def read() -> bytes:
        if state["buf"]:
            data, state["buf"] = state["buf"], b""
            return bytes(data)
        data = raw.read_at(state["pos"], CHUNK)
        state["pos"] += len(data)
        return data

    def chunks() -> bytes:
        while True:
            d = state["d"]
            if d.eof:
                rest = d.unused_data + read()
                if members is not None and rest.startswith(members):
                    state["d"], state["buf"] = new(), rest
                    continue
                return b""
            if hasattr(d, "unconsumed_tail"):
                data = d.unconsumed_tail or read()
            else:
                data = read() if d.needs_input else b""
            if not data and (hasattr(d, "unconsumed_tail") or d.needs_input):
                raise EOFError("compressed stream is truncated")
            out = d.decompress(data, CHUNK)
            if out:
                return bytes(out)

    out = spill(chunks, limit, ctx.file.temp_files)
    ctx.spend(out.size)
    return out


_WRAPPERS: dict[str, tuple[Callable[[], Any], bytes | None]] = {
    "gzip": (lambda: zlib.decompressobj(16 + zlib.MAX_WBITS), b"\x1f\x8b"),
    "zlib": (zlib.decompressobj, None),
    "bzip2": (bz2.BZ2Decompressor, b"BZh"),
    "xz": (lambda: lzma.LZMADecompressor(lzma.FORMAT_XZ), b"\xfd7zXZ\x00"),
    "lzma": (lambda: lzma.LZMADecompressor(lzma.FORMAT_ALONE), None),
}


def scan_compressed(kind: str) -> Callable[[Source, Ctx], None]:
    """A scanner for one wrapper kind: inflate, then scan the content by what it is."""
    new, members = _WRAPPERS[kind]

    def scan(src: Source, ctx: Ctx) -> None:
        try:
            inner = inflate(src, ctx, new, members=members)
        except LimitExceeded as exc:
            ctx.report("limit.exceeded", f"{kind}: {exc}")
            return
        except (zlib.error, OSError, EOFError, lzma.LZMAError, ValueError) as exc:
            ctx.report("archive.unsupported", f"{kind} stream cannot be inflated: {exc}")
            return
        ctx.scan(inner, f"<{kind}>")

    return scan


def scan_unsupported(kind: str) -> Callable[[Source, Ctx], None]:
    def scan(src: Source, ctx: Ctx) -> None:
        ctx.report("archive.unsupported", f"{kind} content cannot be opened by this scanner")

    return scan
