"""safetensors: no code can run, but the header is attacker-controlled JSON.

Checked: header length within the file and the limit, valid UTF-8 JSON object without
repeated keys (parsers disagree on which copy wins), known dtypes, shapes that match the
byte ranges, ranges inside the data buffer that neither overlap nor leave gaps (the
reference implementation refuses gaps; overlaps and out-of-range offsets are how naive
readers get tricked). Only the header is read.
"""

from __future__ import annotations

import json
from typing import Any

from securenb.scan.context import Ctx
from securenb.scan.source import Source

DTYPE_BITS = {
    "BOOL": 8,
    "U8": 8,
    "I8": 8,
    "F8_E5M2": 8,
    "F8_E4M3": 8,
    "F8_E8M0": 8,
    "I16": 16,
    "U16": 16,
    "F16": 16,
    "BF16": 16,
    "I32": 32,
    "U32": 32,
    "F32": 32,
    "I64": 64,
    "U64": 64,
    "F64": 64,
    "C64": 64,
    "F4": 4,
    "F6_E2M3": 6,
    "F6_E3M2": 6,
}


def looks_like_safetensors(head: bytes) -> bool:
    if len(head) < 10:
        return False
    return int.from_bytes(head[:8], "little") >= 2 and head[8:9] == b"{"


def scan_safetensors(src: Source, ctx: Ctx) -> None:
    # imported here: canonical pulls in hashlib and rfc8785, which a scan of any other
    # format (every `securenb scan` start) would pay for
    from securenb.core.canonical import DuplicateKeyError, no_duplicate_keys

    n = int.from_bytes(src.read_at(0, 8), "little")
    if n > ctx.options.max_header_bytes or n > src.size - 8:
        ctx.report("safetensors.malformed", f"header of {n} bytes exceeds the limit or the file")
        return
    try:
        header = json.loads(src.read_at(8, n).decode("utf-8"), object_pairs_hook=no_duplicate_keys)
    except DuplicateKeyError as exc:
        ctx.report("safetensors.duplicate-key", f"header repeats key {exc}", construct=str(exc))
        return
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        ctx.report("safetensors.malformed", f"header is not JSON: {exc}")
        return
    if not isinstance(header, dict):
        ctx.report("safetensors.malformed", "header is not a JSON object")
        return
    data_len = src.size - 8 - n
    meta = header.pop("__metadata__", {})
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        ctx.report("safetensors.malformed", "__metadata__ must map strings to strings")
    spans: list[tuple[int, int, str]] = []
    for name, info in header.items():
        problem = _check_tensor(info, data_len)
        if problem is not None:
            rule = "safetensors.bad-offsets" if "outside" in problem else "safetensors.malformed"
            ctx.report(rule, f"tensor {name!r}: {problem}", construct=name)
            continue
        begin, end = info["data_offsets"]
        spans.append((begin, end, name))
    spans.sort()
    cursor = 0
    for begin, end, name in spans:
        if begin < cursor:
            ctx.report(
                "safetensors.bad-offsets", f"tensor {name!r} overlaps another", construct=name
            )
        elif begin > cursor:
            ctx.report("safetensors.malformed", f"gap before tensor {name!r}", construct=name)
        cursor = max(cursor, end)
    if spans and cursor != data_len:
        ctx.report("safetensors.malformed", f"{data_len - cursor} byte(s) after the last tensor")


def _check_tensor(info: Any, data_len: int) -> str | None:
    if not isinstance(info, dict):
        return "entry is not an object"
    bits = DTYPE_BITS.get(info.get("dtype"))  # type: ignore[arg-type]
    shape = info.get("shape")
    offsets = info.get("data_offsets")
    if bits is None:
        return f"unknown dtype {info.get('dtype')!r}"
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        return "shape is not a list of sizes"
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
    ):
        return "data_offsets is not [begin, end]"
    begin, end = offsets
    if not 0 <= begin <= end <= data_len:
        return f"data_offsets {offsets} lie outside the {data_len}-byte data buffer"
    count = 1
    for d in shape:
        count *= d
    if count * bits != (end - begin) * 8:
        return f"shape {shape} does not fill {end - begin} bytes"
    return None
