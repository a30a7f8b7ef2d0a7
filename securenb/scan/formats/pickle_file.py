"""Raw pickle files: plain pickles, joblib files, concatenated streams, legacy torch.save.

``pickle.load`` reads one pickle, ``torch.load``'s legacy format five, and some code loads
in a loop until EOF: so every pickle in the file is analysed, not just the first. Bytes
after the last stream are read the way an unpickler would read them; only data that no
unpickler can get an import out of counts as inert trailing data.
"""

from __future__ import annotations

from typing import Any

from securenb.scan.context import Ctx
from securenb.scan.parity import Reading, cross_check
from securenb.scan.pickle_analysis import Glob, PickleMachine, SList
from securenb.scan.source import Source

TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
TORCH_LEGACY_PROTOCOL = 1001

_STORAGE_ELEMENT_SIZE = {
    "DoubleStorage": 8,
    "FloatStorage": 4,
    "HalfStorage": 2,
    "BFloat16Storage": 2,
    "LongStorage": 8,
    "IntStorage": 4,
    "ShortStorage": 2,
    "CharStorage": 1,
    "ByteStorage": 1,
    "BoolStorage": 1,
    "ComplexDoubleStorage": 16,
    "ComplexFloatStorage": 8,
    "QUInt8Storage": 1,
    "QInt8Storage": 1,
    "QInt32Storage": 4,
    "QUInt4x2Storage": 1,
    "QUInt2x4Storage": 1,
    "UntypedStorage": 1,
}


def storage_element_size(storage_type: Any) -> int | None:
    """Bytes per element of a legacy storage class referenced as a global."""
    if isinstance(storage_type, Glob) and not storage_type.denied:
        return _STORAGE_ELEMENT_SIZE.get(storage_type.name.rsplit(".", 1)[-1])
    return None


def scan_pickle_file(src: Source, ctx: Ctx) -> None:
    """A file that starts with a pickle (PROTO opcode), read by the machine and CPython."""
    reading = Reading()
    machine = PickleMachine(src, 0, ctx)
    out = machine.run()
    reading.add(machine, 0, out)
    if not out.complete:
        ctx.report("pickle.malformed", f"pickle: {out.error}", offset=out.end)
    else:
        finish_pickle_file(src, ctx, out.end, out.value, reading)
    cross_check(src, ctx, reading)


def scan_pickle_at(src: Source, ctx: Ctx, start: int, what: str, torchscript: bool = False) -> None:
    """A pickle at ``start`` (an object array, an archive member) and what follows it."""
    reading = Reading()
    machine = PickleMachine(src, start, ctx, torchscript=torchscript)
    out = machine.run()
    reading.add(machine, start, out)
    if out.complete:
        scan_trailing(src, ctx, out.end, reading)
    else:
        ctx.report("pickle.malformed", f"{what}: {out.error}", offset=out.end)
    cross_check(src, ctx, reading, start)


def finish_pickle_file(src: Source, ctx: Ctx, end: int, first_value: Any, reading: Reading) -> None:
    """After the first stream: the legacy torch layout, or whatever else follows."""
    if first_value == TORCH_LEGACY_MAGIC and not isinstance(first_value, bool):
        ctx.file.formats.append("pytorch-legacy")
        _torch_legacy(src, ctx, end, reading)
    else:
        scan_trailing(src, ctx, end, reading)


def sniff_pickle(src: Source, ctx: Ctx) -> bool:
    """Try content without a PROTO opcode (protocol 0/1) as a pickle; True if it is one.

    Either way CPython's unpickler reads it too (``pickle.load`` reads any file).
    """
    reading = Reading()
    machine = PickleMachine(src, 0, ctx, tentative=True)
    out = machine.run()
    if not out.complete and not out.imports:
        cross_check(src, ctx, reading)
        return False
    reading.add(machine, 0, out)
    machine.commit()
    ctx.file.formats.append("pickle")
    if out.complete:
        finish_pickle_file(src, ctx, out.end, out.value, reading)
    else:
        ctx.report("pickle.malformed", f"pickle: {out.error}", offset=out.end)
    cross_check(src, ctx, reading)
    return True


def scan_trailing(src: Source, ctx: Ctx, offset: int, reading: Reading) -> None:
    """Streams concatenated after a pickle, or inert data."""
    while offset < src.size:
        machine = PickleMachine(src, offset, ctx, tentative=True)
        out = machine.run()
        if out.complete:
            reading.add(machine, offset, out)
            machine.commit()
            offset = out.end
            continue
        if out.imports:
            reading.add(machine, offset, out)
            machine.commit()
            ctx.report("pickle.malformed", f"pickle: {out.error}", offset=out.end)
            return
        ctx.report(
            "pickle.trailing-data",
            f"{src.size - offset} byte(s) after the last pickle are not a pickle",
            offset=offset,
        )
        return


def _torch_legacy(src: Source, ctx: Ctx, offset: int, reading: Reading) -> None:
    """torch.save's pre-1.6 format: five pickles, then raw storages (size-prefixed)."""
    pids: list[Any] = []
    keys: Any = None
    for index in range(4):
        machine = PickleMachine(src, offset, ctx)
        out = machine.run()
        reading.add(machine, offset, out)
        if not out.complete:
            ctx.report("pickle.malformed", f"legacy torch pickle: {out.error}", offset=out.end)
            return
        if index == 2:
            pids = machine.persistent_ids
        keys = out.value
        offset = out.end
    layout: dict[str, tuple[int, int]] = {}
    for pid in pids:
        if isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage":
            size = storage_element_size(pid[1])
            if size is not None and isinstance(pid[2], str) and isinstance(pid[4], int):
                layout[pid[2]] = (size, pid[4])
    if not isinstance(keys, SList) or keys.n != len(keys.items):
        ctx.report("torch.legacy-layout", "storage key list missing or too long", offset=offset)
        return
    for key in keys.items:
        if key not in layout:
            ctx.report("torch.legacy-layout", f"storage {key!r} has no record", offset=offset)
            return
        size, numel = layout[key]
        recorded = int.from_bytes(src.read_at(offset, 8), "little")
        offset += 8 + recorded * size
        if recorded != numel or offset > src.size:
            ctx.report("torch.legacy-layout", f"storage {key!r} size mismatch", offset=offset)
            return
    if offset < src.size:
        scan_trailing(src, ctx, offset, reading)
