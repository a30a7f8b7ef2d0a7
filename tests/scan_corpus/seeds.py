"""Small valid files of every format, the starting points of the fuzz tests."""

from __future__ import annotations

import gzip
import io
import json
import os
import pickle
import struct
import tarfile
import zipfile

import numpy as np


class _Payload:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, ("true",)


def _zip(members: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members:
            zf.writestr(name, data)
    return buf.getvalue()


def seeds() -> list[bytes]:
    import joblib
    import torch

    out = [
        pickle.dumps({"a": [1, 2.5, "x", b"y"], "t": (1,), "n": np.arange(3)}, protocol=p)
        for p in range(6)
    ]
    out.append(pickle.dumps(_Payload(), protocol=2))
    buf = io.BytesIO()
    torch.save({"w": torch.ones(2, 2), "b": torch.zeros(2)}, buf)
    out.append(buf.getvalue())
    buf = io.BytesIO()
    torch.save({"w": torch.ones(2)}, buf, _use_new_zipfile_serialization=False)
    out.append(buf.getvalue())
    buf = io.BytesIO()
    joblib.dump({"a": np.arange(4.0), "o": np.array(["x"], dtype=object)}, buf)
    out.append(buf.getvalue())
    buf = io.BytesIO()
    np.save(buf, np.array(["x", 1], dtype=object), allow_pickle=True)
    out.append(buf.getvalue())
    out.append(gzip.compress(pickle.dumps([1, 2, 3])))
    header = json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
    out.append(struct.pack("<Q", len(header)) + header + bytes(8))
    out.append(_zip([("a.npy", out[-3]), ("b.pkl", out[0])]))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo("x.pkl")
        info.size = len(out[2])
        tf.addfile(info, io.BytesIO(out[2]))
    out.append(buf.getvalue())
    text = b"{{ m['role'] }}"
    out.append(
        b"GGUF"
        + struct.pack("<IQQ", 3, 0, 1)
        + struct.pack("<Q", 23)
        + b"tokenizer.chat_template"
        + struct.pack("<IQ", 8, len(text))
        + text
    )
    return out
