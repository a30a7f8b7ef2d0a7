"""TAR archives, read header by header, including PyTorch's oldest (pre-0.4) tar format.

Every regular member is scanned in place as a window on the file. Legacy torch tars keep
pickles in four members; ``storages`` and ``tensors`` interleave pickles with raw data,
and are walked record by record because a scanner that reads only ``pickle`` misses the
others. Names and link targets that leave the extraction folder are reported; PAX and GNU
long-name headers are bounded.
"""

from __future__ import annotations

import re
import struct

from securenb.scan.context import Ctx
from securenb.scan.formats.pickle_file import scan_trailing, storage_element_size
from securenb.scan.parity import Reading, cross_check
from securenb.scan.pickle_analysis import PickleMachine
from securenb.scan.source import Source

BLOCK = 512
_MAX_LONG_HEADER = 1 << 20
_TORCH_TAR_MEMBERS = frozenset({"sys_info", "pickle", "storages", "tensors"})


class TarError(Exception):
    pass


def looks_like_tar(head: bytes) -> bool:
    """A valid header checksum (ustar, GNU and v7 tars alike)."""
    if len(head) < BLOCK or head[:BLOCK] == bytes(BLOCK):
        return False
    try:
        recorded = int(head[148:156].split(b"\0", 1)[0].strip() or b"-1", 8)
    except ValueError:
        return False
    computed = sum(head[:148]) + 8 * 32 + sum(head[156:BLOCK])
    return recorded == computed


def _number(field: bytes) -> int:
    if field and field[0] & 0x80:
        return int.from_bytes(field[1:], "big")
    text = field.split(b"\0", 1)[0].strip()
    return int(text, 8) if text else 0


def _escapes(name: str) -> bool:
    parts = re.split(r"[\\/]", name)
    return name.startswith(("/", "\\")) or bool(re.match(r"[A-Za-z]:", name)) or ".." in parts


def members(src: Source, ctx: Ctx) -> list[tuple[str, int, int]]:
    """(name, data offset, size) of the regular files; links and odd types are reported."""
    out: list[tuple[str, int, int]] = []
    pos = 0
    long_name: str | None = None
    pax: dict[str, str] = {}
    global_pax: dict[str, str] = {}
    while pos + BLOCK <= src.size:
        header = src.read_at(pos, BLOCK)
        if header == bytes(BLOCK):
            break
        if not looks_like_tar(header):
            raise TarError(f"bad header checksum at offset {pos}")
        size = _number(header[124:136])
        kind = header[156:157]
        name = header[:100].split(b"\0", 1)[0].decode("utf-8", "replace")
        if header[257:262] == b"ustar" and header[345:500].strip(b"\0"):
            prefix = header[345:500].split(b"\0", 1)[0].decode("utf-8", "replace")
            name = f"{prefix}/{name}"
        link = header[157:257].split(b"\0", 1)[0].decode("utf-8", "replace")
        data = pos + BLOCK
        if kind not in (b"L", b"K", b"x", b"g"):  # tarfile takes the PAX size over the header's
            size = _pax_size({**global_pax, **pax}, size)
        pos = data + (size + BLOCK - 1) // BLOCK * BLOCK
        if data + size > src.size:
            raise TarError(f"member {name!r} runs past the end of the archive")
        if kind in (b"L", b"K", b"x", b"g"):
            if size > _MAX_LONG_HEADER:
                raise TarError(f"extended header of {size} bytes")
            body = src.read_at(data, size)
            if kind == b"L":
                long_name = body.split(b"\0", 1)[0].decode("utf-8", "replace")
            elif kind == b"x":
                pax = _pax(body)
            elif kind == b"g":
                global_pax.update(_pax(body))
            continue
        merged = {**global_pax, **pax}
        name = merged.get("path", long_name or name)
        link = merged.get("linkpath", link)
        long_name, pax = None, {}
        if len(out) >= ctx.options.max_members:
            raise TarError(f"more than {ctx.options.max_members} members")
        if _escapes(name):
            ctx.report("tar.path-traversal", f"{name!r} escapes the folder", construct=name)
        if kind in (b"0", b"\0", b"7"):
            out.append((name, data, size))
        elif kind in (b"1", b"2"):
            target = link if kind == b"1" else f"{name}/../{link}"
            if link.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", link) or _depth(target) < 0:
                ctx.report(
                    "tar.path-traversal", f"link {name!r} -> {link!r} escapes", construct=name
                )
        elif kind == b"S":
            ctx.report("tar.special-member", f"{name!r} is a sparse file", construct=name)
        elif kind in (b"3", b"4", b"6"):
            ctx.report("tar.special-member", f"{name!r} is a device or fifo", construct=name)
    return out


def _depth(path: str) -> int:
    depth = 0
    for part in re.split(r"[\\/]", path):
        if part == "..":
            depth -= 1
            if depth < 0:
                return depth
        elif part not in ("", "."):
            depth += 1
    return depth


def _pax_size(records: dict[str, str], size: int) -> int:
    value = records.get("size")
    if value is None:
        return size
    try:
        parsed = int(value)
    except ValueError as exc:
        raise TarError(f"PAX size {value[:40]!r} is not a number") from exc
    if parsed < 0:
        raise TarError("negative PAX size")
    return parsed


def _pax(body: bytes) -> dict[str, str]:
    records: dict[str, str] = {}
    pos = 0
    while pos < len(body):
        space = body.find(b" ", pos)
        if space < 0:
            break
        try:
            length = int(body[pos:space])
        except ValueError:
            break
        if length <= 0:
            break
        key, _, value = body[space + 1 : pos + length - 1].partition(b"=")
        records[key.decode("utf-8", "replace")] = value.decode("utf-8", "replace")
        pos += length
    return records


def scan_tar(src: Source, ctx: Ctx) -> None:
    try:
        found = members(src, ctx)
    except TarError as exc:
        ctx.report("tar.malformed", str(exc))
        return
    names = {name for name, _, _ in found}
    torch_legacy = names >= _TORCH_TAR_MEMBERS
    if torch_legacy:
        ctx.file.formats.append("pytorch-legacy-tar")
    for name, offset, size in found:
        data = src.window(offset, size)
        if torch_legacy and name in _TORCH_TAR_MEMBERS:
            _scan_torch_member(data, ctx.child(name), name)
        else:
            ctx.scan(data, name)


def _pickle_at(src: Source, ctx: Ctx, offset: int, reading: Reading) -> tuple[int, object] | None:
    machine = PickleMachine(src, offset, ctx)
    out = machine.run()
    reading.add(machine, offset, out)
    if not out.complete:
        ctx.report("pickle.malformed", f"pickle: {out.error}", offset=out.end)
        return None
    return out.end, out.value


def _scan_torch_member(src: Source, ctx: Ctx, name: str) -> None:
    """Walk one member of a legacy torch tar the way ``torch.load`` reads it."""
    reading = Reading()
    _walk_torch_member(src, ctx, name, reading)
    cross_check(src, ctx, reading)


def _walk_torch_member(src: Source, ctx: Ctx, name: str, reading: Reading) -> None:
    first = _pickle_at(src, ctx, 0, reading)
    if first is None:
        return
    offset, count = first
    if name in ("pickle", "sys_info"):
        scan_trailing(src, ctx, offset, reading)
        return
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        ctx.report("torch.legacy-layout", f"{name}: record count is not an integer")
        return
    for _ in range(count):
        record = _pickle_at(src, ctx, offset, reading)
        if record is None:
            return
        offset, args = record
        if name == "storages":
            size = (
                storage_element_size(args[2])
                if isinstance(args, tuple) and len(args) == 3
                else None
            )
            if size is None:
                ctx.report("torch.legacy-layout", "storage record without a storage type")
                return
            offset += 8 + int.from_bytes(src.read_at(offset, 8), "little") * size
        else:
            ndim = struct.unpack("<i", src.read_at(offset, 4).ljust(4, b"\0"))[0]
            if not 0 <= ndim <= 64:
                ctx.report("torch.legacy-layout", f"tensor record with {ndim} dimensions")
                return
            offset += 8 + 16 * ndim + 8
        if offset > src.size:
            ctx.report("torch.legacy-layout", f"{name}: records run past the member's end")
            return
    if name == "storages":
        views = _pickle_at(src, ctx, offset, reading)
        if views is None:
            return
        offset = views[0]
    scan_trailing(src, ctx, offset, reading)
