"""HDF5 (Keras ``.h5``, pandas/PyTables stores): inspected by h5py in a child process.

The HDF5 C library parses hostile files with a long CVE history, so it never runs in the
scanning process: a child with a memory limit and a timeout reads the attributes (Keras
``model_config``/``training_config``, anything that looks like a pickle) and the
PyTables object arrays, whose elements are pickles. The parent checks what it returns;
a crash, a timeout or a missing h5py means UNKNOWN.
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import tempfile

from securenb.scan.context import Ctx
from securenb.scan.formats.keras_config import scan_keras_config_bytes
from securenb.scan.formats.pickle_file import scan_pickle_at, sniff_pickle
from securenb.scan.source import Source

MAGIC = b"\x89HDF\r\n\x1a\n"
MEMORY_LIMIT = 4 << 30

_WORKER = r"""
import base64, json, os, resource, sys
limit = int(sys.argv[4])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
import h5py
fd, start, size = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])

class Window:
    def __init__(self):
        self.pos = 0
    def read(self, n=-1):
        n = size - self.pos if n is None or n < 0 else min(n, size - self.pos)
        data = os.pread(fd, max(n, 0), start + self.pos)
        self.pos += len(data)
        return data
    def readinto(self, buf):
        data = self.read(len(buf))
        buf[: len(data)] = data
        return len(data)
    def seek(self, off, whence=0):
        self.pos = off if whence == 0 else self.pos + off if whence == 1 else size + off
        return self.pos
    def tell(self):
        return self.pos
    def seekable(self):
        return True
    def readable(self):
        return True
    def writable(self):
        return False

out = {"configs": [], "pickles": [], "maybe": [], "truncated": [], "unreadable": []}
budget = [64 << 20]
seen = [0]

def as_bytes(value):
    if isinstance(value, h5py.Empty):
        return b""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    if getattr(value, "dtype", None) is not None and value.dtype.kind in "SV" and value.ndim == 0:
        return value.tobytes()
    return None

def keep(kind, where, data):
    budget[0] -= len(data)
    if budget[0] < 0:
        out["truncated"].append(where)
    else:
        out[kind].append([where, base64.b64encode(data).decode()])

def looks_pickled(data):
    # PyTables unpickles every byte-string attribute that ends with "."
    return data[:1] == b"\x80" or data.endswith(b".") or (
        data[:1] in (b"c", b"(") and b"\n" in data[:256]
    )

def attrs(obj, path):
    keys = list(obj.attrs.keys())
    if len(keys) > 10000:
        out["truncated"].append(f"{path}: {len(keys) - 10000} attributes past 10000")
    for key in keys[:10000]:
        try:
            data = as_bytes(obj.attrs[key])
        except Exception as exc:  # what h5py cannot read was not checked: never SAFE
            out["unreadable"].append(f"{path}@{key}: {type(exc).__name__}")
            continue
        if data is None:
            continue
        where = f"{path}@{key}"
        config = data[:1] == b"{" and b'"class_name"' in data
        if key in ("model_config", "training_config") or config:
            keep("configs", where, data)
        elif looks_pickled(data):
            keep("maybe", where, data)

def visit(name, obj):
    seen[0] += 1
    if seen[0] > 200000:
        raise StopIteration
    attrs(obj, "/" + name)
    if isinstance(obj, h5py.Dataset):
        atom = obj.attrs.get("PSEUDOATOM")
        if atom in (b"object", "object"):
            rows = obj.shape[0] if obj.shape else 0
            if rows > 100000:
                out["truncated"].append(f"/{name}: {rows - 100000} object rows past 100000")
            for i in range(min(rows, 100000)):
                keep("pickles", f"/{name}[{i}]", obj[i].tobytes())

with h5py.File(Window(), "r") as f:
    attrs(f, "")
    try:
        f.visititems(visit)
    except StopIteration:
        out["truncated"].append("more than 200000 objects")
print(json.dumps(out))
"""


def scan_hdf5(src: Source, ctx: Ctx) -> None:
    ctx.file.formats.append("hdf5")
    fd = src.fd
    holder = None
    start = src.start
    if fd is None:
        holder = tempfile.TemporaryFile()  # noqa: SIM115 - closed below
        holder.write(src.read_at(0, src.size))
        holder.flush()
        fd, start = holder.fileno(), 0
    env = {"PATH": os.environ.get("PATH", ""), "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    try:
        proc = subprocess.run(
            [
                sys.executable,
                "-I",
                "-c",
                _WORKER,
                str(fd),
                str(start),
                str(src.size),
                str(MEMORY_LIMIT),
            ],
            capture_output=True,
            timeout=ctx.options.hdf5_timeout_s,
            pass_fds=(fd,),
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired:
        ctx.report(
            "hdf5.unreadable", f"HDF5 inspection took longer than {ctx.options.hdf5_timeout_s} s"
        )
        return
    finally:
        if holder is not None:
            holder.close()
    if proc.returncode != 0:
        last = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no output"]
        ctx.report("hdf5.unreadable", f"HDF5 inspector failed: {last[0][:200]}")
        return
    try:
        found = json.loads(proc.stdout)
    except ValueError:
        ctx.report("hdf5.unreadable", "HDF5 inspector returned no result")
        return
    for where in found["unreadable"]:
        ctx.report("hdf5.unreadable", f"{where}: attribute could not be read", construct=where)
    for where in found["truncated"]:
        ctx.report("hdf5.pickled-object", f"{where}: not inspected (limit)", construct=where)
    for where, data in found["configs"]:
        scan_keras_config_bytes(base64.b64decode(data), ctx.child(where))
    for where, data in found["pickles"]:
        inner = Source(io.BytesIO(base64.b64decode(data)))
        scan_pickle_at(inner, ctx.child(where), 0, "pickled HDF5 value")
    for where, data in found["maybe"]:
        sniff_pickle(Source(io.BytesIO(base64.b64decode(data))), ctx.child(where))
