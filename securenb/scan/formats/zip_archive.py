"""ZIP archives (PyTorch checkpoints, .npz, .keras, plain zips), read by our own parser.

Python's ``zipfile`` and PyTorch's miniz reader disagree on odd archives, and scanners
that trusted ``zipfile`` were bypassed by exactly that: flag bits it refuses, CRC errors it
raises on, data before the archive it silently skips, duplicate names where it keeps the
last. Here every central-directory entry is checked against its local header and every
member is scanned (duplicates too); anything only an attacker would write is reported.

Stored members are scanned in place (a window on the file); tensor storages of a PyTorch
checkpoint are never read, so the cost does not depend on the size of the weights.
"""

from __future__ import annotations

import bz2
import itertools
import lzma
import re
import struct
import zlib
from collections import Counter
from dataclasses import dataclass

from securenb.scan.context import Ctx
from securenb.scan.formats.compressed import inflate
from securenb.scan.formats.keras_config import scan_keras_config_bytes
from securenb.scan.formats.pickle_file import scan_pickle_at
from securenb.scan.formats.torchscript import check_torchscript_code
from securenb.scan.source import LimitExceeded, Source

_EOCD = b"PK\x05\x06"
_EOCD64_LOCATOR = b"PK\x06\x07"
_EOCD64 = b"PK\x06\x06"
_CENTRAL = b"PK\x01\x02"
_LOCAL = b"PK\x03\x04"
_BENIGN_FLAGS = 0x0002 | 0x0004 | 0x0008 | 0x0800
_CRC_LIMIT = 16 << 20
_KERAS_WEIGHTS = frozenset({"model.weights.h5", "model.weights.npz"})
"""Read by Keras as arrays only (h5py datasets / np.load without pickle): never code."""
_TORCH_META = re.compile(r"(\.data/.*|version|\.format_version|byteorder|\.storage_alignment)\Z")


@dataclass
class Entry:
    """One central-directory record, with where its data really starts."""

    name: str
    raw_name: bytes
    flags: int
    method: int
    crc: int
    csize: int
    usize: int
    header_offset: int
    external_attr: int
    create_system: int
    data_offset: int = -1


class ZipError(Exception):
    pass


def _eocd(src: Source, ctx: Ctx) -> tuple[int, int, int, int]:
    """(eocd position, entry count, directory size, directory offset)."""
    tail_len = min(src.size, 65535 + 22)
    tail = src.read_at(src.size - tail_len, tail_len)
    pos = tail.rfind(_EOCD)
    if pos < 0 or len(tail) - pos < 22:
        raise ZipError("no end-of-central-directory record")
    count, cd_size, cd_offset = struct.unpack("<xxxxxxxxxxHII", tail[pos : pos + 20])
    eocd = src.size - tail_len + pos
    locator = src.read_at(eocd - 20, 20) if eocd >= 20 else b""
    if locator[:4] == _EOCD64_LOCATOR:
        rec_offset = struct.unpack("<Q", locator[8:16])[0]
        rec = src.read_at(rec_offset, 56)
        if rec[:4] != _EOCD64:
            rec_offset = eocd - 20 - 56
            rec = src.read_at(rec_offset, 56)
        if rec[:4] != _EOCD64 or len(rec) < 56:
            raise ZipError("ZIP64 end record missing")
        count, cd_size, cd_offset = struct.unpack("<QQQ", rec[32:56])
        eocd = rec_offset
    return eocd, count, cd_size, cd_offset


def read_directory(src: Source, ctx: Ctx) -> tuple[list[Entry], int]:
    """The central directory's entries and the length of data before the archive."""
    eocd, count, cd_size, cd_offset = _eocd(src, ctx)
    if count > ctx.options.max_members or cd_size > ctx.options.max_header_bytes:
        raise LimitExceeded(f"zip directory of {count} entries / {cd_size} bytes")
    concat = eocd - cd_size - cd_offset
    if concat < 0:
        raise ZipError("central directory lies past its end record")
    cd = src.read_at(cd_offset + concat, cd_size)
    entries: list[Entry] = []
    pos = 0
    while pos + 46 <= len(cd) and cd[pos : pos + 4] == _CENTRAL:
        (_, made_by, _, flags, method, _, _, crc, csize, usize, nlen, elen, clen, _, _) = (
            struct.unpack("<4sHHHHHHIIIHHHHH", cd[pos : pos + 38])
        )
        ext_attr, offset = struct.unpack("<II", cd[pos + 38 : pos + 46])
        raw = cd[pos + 46 : pos + 46 + nlen]
        extra = cd[pos + 46 + nlen : pos + 46 + nlen + elen]
        usize, csize, offset = _zip64_extra(extra, usize, csize, offset)
        name = raw.decode("utf-8" if flags & 0x800 else "cp437", "replace")
        entries.append(
            Entry(name, raw, flags, method, crc, csize, usize, offset, ext_attr, made_by >> 8)
        )
        pos += 46 + nlen + elen + clen
    if len(entries) != count and count != 0xFFFF:
        raise ZipError(f"central directory lists {len(entries)} of {count} entries")
    return entries, concat


def _zip64_extra(extra: bytes, usize: int, csize: int, offset: int) -> tuple[int, int, int]:
    pos = 0
    while pos + 4 <= len(extra):
        tag, size = struct.unpack("<HH", extra[pos : pos + 4])
        if tag == 1:
            data, i = extra[pos + 4 : pos + 4 + size], 0
            if usize == 0xFFFFFFFF and i + 8 <= len(data):
                usize, i = struct.unpack("<Q", data[i : i + 8])[0], i + 8
            if csize == 0xFFFFFFFF and i + 8 <= len(data):
                csize, i = struct.unpack("<Q", data[i : i + 8])[0], i + 8
            if offset == 0xFFFFFFFF and i + 8 <= len(data):
                offset = struct.unpack("<Q", data[i : i + 8])[0]
        pos += 4 + size
    return usize, csize, offset


def _locate(src: Source, ctx: Ctx, entry: Entry, concat: int) -> bool:
    """Check the local header against the directory; set ``data_offset``."""
    at = concat + entry.header_offset
    local = src.read_at(at, 30)
    if len(local) < 30 or local[:4] != _LOCAL:
        ctx.report(
            "zip.header-mismatch",
            f"{entry.name}: no local header where the directory points",
            offset=at,
            construct=entry.name,
        )
        return False
    method, nlen, elen = struct.unpack("<xxxxxxxxH16xHH", local)
    raw = src.read_at(at + 30, nlen)
    if raw != entry.raw_name or method != entry.method:
        ctx.report(
            "zip.header-mismatch",
            f"{entry.name}: local header says {raw!r} (method {method}), "
            f"directory says {entry.raw_name!r} (method {entry.method})",
            offset=at,
            construct=entry.name,
        )
    entry.data_offset = at + 30 + nlen + elen
    if entry.data_offset + entry.csize > src.size:
        raise ZipError(f"{entry.name}: data runs past the end of the file")
    return True


def _check_entry(ctx: Ctx, entry: Entry) -> None:
    odd = entry.flags & ~_BENIGN_FLAGS
    if odd:
        ctx.report(
            "zip.unusual-flags",
            f"{entry.name}: flag bits 0x{odd:04x} (encryption or reserved)",
            construct=entry.name,
        )
    parts = re.split(r"[\\/]", entry.name)
    if entry.name.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", entry.name) or ".." in parts:
        ctx.report("zip.path-traversal", f"{entry.name!r} escapes the folder", construct=entry.name)
    if entry.create_system == 3 and (entry.external_attr >> 16) & 0o170000 == 0o120000:
        ctx.report("zip.symlink", f"{entry.name} is a symbolic link", construct=entry.name)


def member_source(src: Source, ctx: Ctx, entry: Entry) -> Source | None:
    """The member's bytes: a window if stored, a capped temp file if compressed."""
    raw = src.window(entry.data_offset, entry.csize)
    if entry.method == 0:
        return raw
    if entry.method == 8:
        return inflate(raw, ctx, lambda: zlib.decompressobj(-15), declared=entry.usize)
    if entry.method == 12:
        return inflate(raw, ctx, bz2.BZ2Decompressor, declared=entry.usize)
    if entry.method == 14:
        props_len = int.from_bytes(raw.read_at(2, 2), "little")
        props = raw.read_at(4, props_len)
        filters = [lzma._decode_filter_properties(lzma.FILTER_LZMA1, props)]  # type: ignore[attr-defined]
        body = raw.window(4 + props_len, raw.size)
        return inflate(
            body,
            ctx,
            lambda: lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=filters),
            declared=entry.usize,
        )
    ctx.report(
        "zip.unsupported-method",
        f"{entry.name}: compression method {entry.method}",
        construct=entry.name,
    )
    return None


@dataclass
class _Flavor:
    """What the member names say the archive is, and which members hold no code."""

    torch_roots: set[str]
    torchscript: bool
    keras: bool

    @classmethod
    def of(cls, names: set[str]) -> _Flavor:
        roots = {n.rsplit("/", 1)[0] for n in names if n.endswith(("/data.pkl", "/constants.pkl"))}
        script = bool(roots) and any(n.endswith("/constants.pkl") or "/code/" in n for n in names)
        return cls(roots, script, "config.json" in names and "metadata.json" in names)

    def is_code(self, name: str) -> bool:
        """TorchScript source, compiled by ``torch.jit.load``."""
        root, _, rel = name.partition("/")
        return (
            self.torchscript
            and root in self.torch_roots
            and rel.startswith("code/")
            and not name.endswith((".pkl", ".debug_pkl"))
        )

    def skips(self, entry: Entry) -> bool:
        """Raw data only its loader reads (tensor storages, weight arrays) or TorchScript code.

        A name ending in ``/`` is a folder only when it holds nothing: ``np.load`` and
        ``zipfile`` read such a member like any other.
        """
        name = entry.name
        if (name.endswith("/") and entry.usize == 0 and entry.csize == 0) or (
            self.keras and name in _KERAS_WEIGHTS
        ):
            return True
        root, _, rel = name.partition("/")
        if root not in self.torch_roots:
            return False
        return bool(re.fullmatch(r"data/[^/]+", rel) or _TORCH_META.match(rel))


def scan_zip(src: Source, ctx: Ctx, *, prefix: bool = True) -> None:
    """Scan every member; ``prefix``: also scan data found before the archive."""
    try:
        entries, concat = read_directory(src, ctx)
    except ZipError as exc:
        ctx.report("zip.malformed", str(exc))
        return
    if concat and prefix:
        ctx.report(
            "zip.prepended-data",
            f"{concat} byte(s) before the archive; loaders that read from the start see them",
            offset=0,
        )
        ctx.scan(src.window(0, concat), "<data before zip>")
    names = Counter(e.name for e in entries)
    for name, n in names.items():
        if n > 1:
            ctx.report("zip.duplicate-name", f"{name} appears {n} times", construct=name)
    flavor = _Flavor.of(set(names))
    if flavor.torch_roots:
        ctx.file.formats.append("pytorch-zip")
        if flavor.torchscript:
            ctx.file.formats.append("torchscript")
    elif flavor.keras:
        ctx.file.formats.append("keras")
    located = []
    for entry in entries:
        _check_entry(ctx, entry)
        if flavor.skips(entry):
            continue  # never read: where its bytes are does not matter
        try:
            if _locate(src, ctx, entry, concat):
                located.append(entry)
        except ZipError as exc:
            ctx.report("zip.malformed", str(exc), construct=entry.name)
    spans = sorted((e.header_offset + concat, e.data_offset + e.csize, e.name) for e in located)
    for (_, end, a), (start, _, b) in itertools.pairwise(spans):
        if start < end:
            ctx.report("zip.overlapping-members", f"{a} and {b} overlap", construct=b)
            return
    for entry in located:
        _scan_member(src, ctx, entry, flavor)


def _scan_member(src: Source, ctx: Ctx, entry: Entry, flavor: _Flavor) -> None:
    name = entry.name
    try:
        data = member_source(src, ctx, entry)
    except LimitExceeded as exc:
        ctx.report("limit.exceeded", f"{name}: {exc}", construct=name)
        return
    except (zlib.error, OSError, EOFError, lzma.LZMAError, ValueError) as exc:
        ctx.report("zip.malformed", f"{name}: cannot inflate: {exc}", construct=name)
        return
    if data is None:
        return
    if data.size <= _CRC_LIMIT and zlib.crc32(data.read_at(0, data.size)) != entry.crc:
        ctx.report("zip.crc-mismatch", f"{name}: CRC does not match", construct=name)
    member_ctx = ctx.child(name)
    if flavor.is_code(name):
        check_torchscript_code(data.read_at(0, data.size), member_ctx)
    elif name.endswith((".pkl", ".debug_pkl")) and flavor.torch_roots:
        _scan_pickle_member(data, member_ctx, flavor.torchscript)
    elif name == "config.json" and (flavor.keras or _keras_like(data)):
        scan_keras_config_bytes(data.read_at(0, data.size), member_ctx)
    else:
        ctx.scan(data, name)


def _keras_like(data: Source) -> bool:
    """A top-level ``config.json`` that Keras' ``load_model`` would deserialize.

    Keras does not need ``metadata.json``; a Keras config names its ``class_name``.
    """
    return b'"class_name"' in data.read_at(0, min(data.size, 1 << 20))


def _scan_pickle_member(data: Source, ctx: Ctx, torchscript: bool) -> None:
    scan_pickle_at(data, ctx, 0, "pickle", torchscript)
