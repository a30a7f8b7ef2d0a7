"""Format detection by content, and the table of scanners.

File extensions are attacker-chosen and loaders ignore them (``torch.load`` looks at the
first bytes, ``np.load`` falls back to pickle), so the choice is made from magic numbers
and structure. Names are used only where content says nothing: protobuf files
(``saved_model.pb``, ``keras_metadata.pb``) and TensorFlow checkpoint shards, whose bytes
are raw tensors read by nothing but TensorFlow's restore op.
"""

from __future__ import annotations

import json
import os
import re
import struct
import zlib
from collections.abc import Callable

from securenb.scan.context import Ctx
from securenb.scan.formats.chat_template import check_chat_template
from securenb.scan.formats.compressed import scan_compressed, scan_unsupported
from securenb.scan.formats.gguf_file import scan_gguf
from securenb.scan.formats.hdf5_file import MAGIC as HDF5_MAGIC
from securenb.scan.formats.hdf5_file import scan_hdf5
from securenb.scan.formats.keras_config import scan_keras_config
from securenb.scan.formats.numpy_file import MAGIC as NPY_MAGIC
from securenb.scan.formats.numpy_file import scan_npy
from securenb.scan.formats.onnx_model import looks_like_onnx, scan_onnx
from securenb.scan.formats.pickle_file import scan_pickle_file, sniff_pickle
from securenb.scan.formats.safetensors_file import looks_like_safetensors, scan_safetensors
from securenb.scan.formats.tar_archive import looks_like_tar, scan_tar
from securenb.scan.formats.tensorflow import (
    looks_like_saved_model,
    scan_keras_metadata,
    scan_saved_model,
    scan_saved_model_text,
)
from securenb.scan.formats.zip_archive import ZipError, read_directory, scan_zip
from securenb.scan.parity import Reading, cross_check
from securenb.scan.source import LimitExceeded, Source

Scanner = Callable[[Source, Ctx], None]

_TEXT_PROBE = 8192
_TF_SHARD = re.compile(r".*\.data-\d{5}-of-\d{5}\Z")
_LEVELDB_MAGIC = bytes.fromhex("57fb808b247547db")
_PYC_MAGIC_RANGE = range(3000, 4000)
_MACHO = (b"\xfe\xed\xfa\xce", b"\xfe\xed\xfa\xcf", b"\xce\xfa\xed\xfe", b"\xcf\xfa\xed\xfe")


def detect(src: Source) -> str:
    """The format named by the first bytes; ``sniff`` when they name none."""
    head = src.head(560)
    if not head:
        return "empty"
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "zip"
    if head[0] == 0x80 and len(head) > 1 and head[1] <= 5:
        return "pickle"
    for magic, kind in _MAGICS:
        if head.startswith(magic):
            return kind
    if head[512 : 512 + 8] == HDF5_MAGIC:
        return "hdf5"
    if head[:4] in _MACHO or head[:4] == b"\x7fELF" or (head[:2] == b"MZ" and len(head) > 64):
        return "native-code"
    if head[0] == 0x5D and head[5:13] == b"\xff" * 8:
        return "lzma"
    if head[0] == 0x78 and len(head) > 1 and (0x7800 + head[1]) % 31 == 0 and _inflates(head):
        return "zlib"
    if (
        len(head) >= 16
        and head[2:4] == b"\r\n"
        and int.from_bytes(head[:2], "little") in _PYC_MAGIC_RANGE
    ):
        return "python-bytecode"
    if looks_like_safetensors(head):
        return "safetensors"
    if looks_like_tar(head):
        return "tar"
    if head[:1] == b"{" and head[1:2] in (b"L", b"l", b"i", b"I", b"U", b"$", b"#"):
        return "ubjson"  # XGBoost's .ubj: typed data, read only by XGBoost's own parser
    return "sniff"


_MAGICS: list[tuple[bytes, str]] = [
    (NPY_MAGIC, "npy"),
    (HDF5_MAGIC, "hdf5"),
    (b"GGUF", "gguf"),
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"7z\xbc\xaf\x27\x1c", "7z"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"\x04\x22\x4d\x18", "lz4"),
    (b"Rar!\x1a\x07", "rar"),
    (b"\x89PNG\r\n\x1a\n", "image"),
    (b"\xff\xd8\xff", "image"),
    (b"GIF8", "image"),
]


def _inflates(head: bytes) -> bool:
    try:
        zlib.decompressobj().decompress(head, 64)
    except zlib.error:
        return False
    return True


def _name(ctx: Ctx) -> str:
    return os.path.basename(ctx.member.rsplit("!", 1)[-1] if ctx.member else ctx.file.path)


def _is_text(src: Source) -> bool:
    probe = src.read_at(0, _TEXT_PROBE)
    if b"\0" in probe:
        return False
    try:
        probe.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start >= len(probe) - 3 and len(probe) == _TEXT_PROBE
    return True


def _scan_text(src: Source, ctx: Ctx) -> None:
    """Text is inert, except code and templates: Python files, chat templates (Jinja)."""
    ctx.file.formats.append("text")
    name = _name(ctx)
    if name.endswith(".py"):
        ctx.report("code.python-source", "Python source (runs when loaded as remote code)")
        return
    if src.size > ctx.options.max_header_bytes:
        ctx.report("limit.exceeded", f"{src.size}-byte text file not examined")
        return
    data = src.read_at(0, src.size)
    if name == "saved_model.pbtxt":
        scan_saved_model_text(data, ctx)
        return
    if name.endswith((".jinja", ".jinja2", ".j2")):
        check_chat_template(data.decode("utf-8", "replace"), ctx, name)
        return
    if data.lstrip()[:1] != b"{":
        return
    try:
        config = json.loads(data)
    except ValueError:
        return
    except RecursionError:  # a loader with more stack left may still read it
        ctx.report("limit.exceeded", "JSON nested too deep to examine")
        return
    if name == "config.json" and isinstance(config, dict) and "class_name" in config:
        scan_keras_config(config, ctx)  # an unzipped .keras model folder
    template = config.get("chat_template") if isinstance(config, dict) else None
    templates = template if isinstance(template, list) else [template]
    for item in templates:
        if isinstance(item, dict):
            item = item.get("template")
        if isinstance(item, str):
            check_chat_template(item, ctx, "chat_template")


def _scan_sniffed(src: Source, ctx: Ctx) -> None:
    """No magic: a protocol 0/1 pickle, a protobuf model, text, or data we cannot place."""
    if sniff_pickle(src, ctx):
        return
    name = _name(ctx)
    if name == "keras_metadata.pb":
        scan_keras_metadata(src, ctx)
    elif looks_like_onnx(src):
        scan_onnx(src, ctx)
    elif looks_like_saved_model(src):
        scan_saved_model(src, ctx)
    elif _is_text(src):
        _scan_text(src, ctx)
    elif _TF_SHARD.match(name) or src.read_at(src.size - 8, 8) == _LEVELDB_MAGIC:
        ctx.file.formats.append("tf-checkpoint")
    else:
        ctx.file.formats.append("data")
        ctx.report("format.unrecognized", f"{src.size} bytes of unrecognized content")


def _nothing(kind: str) -> Scanner:
    def scan(src: Source, ctx: Ctx) -> None:
        ctx.file.formats.append(kind)

    return scan


def _empty(src: Source, ctx: Ctx) -> None:
    """An empty file was not checked: UNKNOWN. An empty archive member is just empty."""
    if ctx.member is None:
        ctx.report("scan.empty", "empty file: nothing to check")
    else:
        ctx.file.formats.append("empty")


def _refuse(rule: str, what: str) -> Scanner:
    def scan(src: Source, ctx: Ctx) -> None:
        ctx.report(rule, what)

    return scan


SCANNERS: dict[str, Scanner] = {
    "zip": scan_zip,
    "pickle": scan_pickle_file,
    "npy": scan_npy,
    "hdf5": scan_hdf5,
    "gguf": scan_gguf,
    "safetensors": scan_safetensors,
    "tar": scan_tar,
    "gzip": scan_compressed("gzip"),
    "bzip2": scan_compressed("bzip2"),
    "xz": scan_compressed("xz"),
    "lzma": scan_compressed("lzma"),
    "zlib": scan_compressed("zlib"),
    "7z": scan_unsupported("7z"),
    "zstd": scan_unsupported("zstd"),
    "lz4": scan_unsupported("lz4"),
    "rar": scan_unsupported("rar"),
    "image": _nothing("image"),
    "ubjson": _nothing("ubjson"),
    "empty": _empty,
    "native-code": _refuse("format.native-code", "native executable or shared library"),
    "python-bytecode": _refuse("format.python-bytecode", "compiled Python bytecode"),
    "sniff": _scan_sniffed,
}

# Formats whose loaders read from the start, so a zip directory at the end is a second,
# hidden interpretation of the same bytes.
_STREAM_FORMATS = frozenset({"pickle", "npy", "sniff"})


def scan_source(src: Source, ctx: Ctx) -> str:
    """Detect ``src``'s format and scan it; returns the detected format."""
    if ctx.depth > ctx.options.max_depth:
        ctx.report("limit.exceeded", f"nested more than {ctx.options.max_depth} levels deep")
        return "too-deep"
    kind = detect(src)
    if kind not in ("sniff", "empty"):
        ctx.file.formats.append(kind)
    try:
        SCANNERS[kind](src, ctx)
        _other_readings(src, ctx, kind)
    except LimitExceeded as exc:
        ctx.report("limit.exceeded", str(exc))
    except OSError as exc:
        ctx.report("fs.unreadable", f"read error: {exc}")
    return kind


def _other_readings(src: Source, ctx: Ctx, kind: str) -> None:
    """Every other way a loader could read the same bytes; the worst verdict counts.

    ``pickle.load`` reads any file from offset 0; ``zipfile`` (Keras) finds an archive by
    its end record; libhdf5 finds a superblock at 0, 512, 1024, 2048, ...; ``tarfile``
    reads any file with a valid first header.
    """
    if kind not in ("pickle", "sniff", "empty"):
        cross_check(src, ctx, Reading())
    if kind != "zip":
        _zip_trailer(src, ctx, polyglot=kind in _STREAM_FORMATS)
    if kind != "hdf5" and _hdf5_superblock(src):
        ctx.file.formats.append("hdf5")
        scan_hdf5(src, ctx)
    if kind != "tar" and looks_like_tar(src.head(512)):
        ctx.file.formats.append("tar")
        scan_tar(src, ctx)


def _hdf5_superblock(src: Source) -> bool:
    offset = 0
    while offset + 8 <= src.size:
        if src.read_at(offset, 8) == HDF5_MAGIC:
            return True
        offset = 512 if offset == 0 else offset * 2
    return False


def _zip_trailer(src: Source, ctx: Ctx, polyglot: bool) -> None:
    """A file that also parses as a zip (found by its end record): scan that reading too.

    After a pickle or array that is a polyglot (UNSAFE); after other formats (a tarball
    whose last member is a zip) only the members' verdicts count.
    """
    if src.read_at(max(0, src.size - 65557), 65557).rfind(b"PK\x05\x06") < 0:
        return
    try:
        entries, _ = read_directory(src, ctx)
    except (ZipError, LimitExceeded, struct.error, ValueError):
        return
    if not entries:
        return
    if polyglot:
        ctx.report(
            "polyglot.zip-trailer",
            f"the file also reads as a zip archive of {len(entries)} member(s)",
        )
    scan_zip(src, ctx, prefix=False)
