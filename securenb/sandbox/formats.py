"""Safe formats for data that crosses the sandbox boundary, on both sides.

Only formats whose loaders cannot run code: NumPy ``.npy`` without pickle,
Parquet, safetensors and JSON. Writers refuse anything else (with the reason),
readers use the pickle-free loader for the file's extension and nothing else.
Heavy libraries are imported only when a value of theirs is passed.
"""

from __future__ import annotations

import io
import json
import math
import os
from pathlib import Path
from typing import Any

EXTENSIONS = {"numpy": ".npy", "pandas": ".parquet", "torch": ".safetensors",
              "torch-dict": ".safetensors", "numpy-dict": ".safetensors", "json": ".json"}


class UnsafeValueError(TypeError):
    """A value has no safe format; the message says what to pass instead."""


def _module(value: Any) -> str:
    return type(value).__module__.split(".")[0]


def kind_of(value: Any) -> str:
    """The safe format for ``value``, or UnsafeValueError."""
    mod = _module(value)
    if mod == "numpy" and type(value).__name__ == "ndarray":
        if value.dtype.hasobject:
            raise UnsafeValueError("object arrays need pickle; convert to a numeric dtype")
        return "numpy"
    if mod == "pandas" and type(value).__name__ in ("DataFrame", "Series"):
        return "pandas"
    if mod == "torch" and type(value).__name__ in ("Tensor", "Parameter"):
        return "torch"
    if isinstance(value, dict) and value and all(isinstance(k, str) for k in value):
        mods = {(_module(v), type(v).__name__) for v in value.values()}
        if mods <= {("torch", "Tensor"), ("torch", "Parameter")}:
            return "torch-dict"
        if mods == {("numpy", "ndarray")}:
            return "numpy-dict"
    if not _plain_json(value):
        raise UnsafeValueError(
            f"{type(value).__name__} has no safe format: pass a NumPy array, a pandas "
            "DataFrame, a torch tensor or state_dict (e.g. model.state_dict()), or JSON data "
            "(str keys, finite numbers; tuples come back as lists)"
        )
    return "json"


def _plain_json(value: Any) -> bool:
    """JSON that reads back equal (no int keys turned into strings, no NaN)."""
    if value is None or isinstance(value, (bool, int, str)):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, (list, tuple)):
        return all(_plain_json(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain_json(v) for k, v in value.items())
    return False


def save(value: Any, path_without_suffix: Path) -> Path:
    """Write ``value`` in its safe format; return the file written.

    Written under a temporary name and renamed, so a sandbox killed mid-write
    (memory limit, timeout) leaves no truncated output behind.
    """
    kind = kind_of(value)
    path = path_without_suffix.with_name(path_without_suffix.name + EXTENSIONS[kind])
    final, path = path, path.with_name(f".{path.name}.partial")
    try:
        _write(value, kind, path)
        os.replace(path, final)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return final


def _write(value: Any, kind: str, path: Path) -> None:
    if kind == "numpy":
        import numpy as np

        with open(path, "wb") as fh:
            np.save(fh, value, allow_pickle=False)
    elif kind == "pandas":
        frame = value.to_frame() if type(value).__name__ == "Series" else value
        frame.to_parquet(path)
    elif kind == "torch":
        from safetensors.torch import save_file

        save_file({"tensor": value.detach().contiguous().cpu()}, str(path))
    elif kind == "torch-dict":
        from safetensors.torch import save_file

        save_file({k: v.detach().contiguous().cpu() for k, v in value.items()}, str(path),
                  metadata={"securenb.kind": kind})
    elif kind == "numpy-dict":
        from safetensors.numpy import save_file as save_numpy

        save_numpy(dict(value), str(path), metadata={"securenb.kind": kind})
    else:
        path.write_text(json.dumps(value, allow_nan=False))


def load(path: Path, kind: str) -> Any:
    """Read a file written by ``save`` with the pickle-free loader of ``kind``."""
    if EXTENSIONS.get(kind) != path.suffix:
        raise UnsafeValueError(f"{path.name}: extension does not match format {kind!r}")
    if kind == "numpy":
        import numpy as np

        return np.load(path, allow_pickle=False)
    if kind == "pandas":
        import pyarrow.parquet as pq  # type: ignore[import-untyped]

        return pq.read_table(path).to_pandas()
    if kind in ("torch", "torch-dict"):
        from safetensors.torch import load_file

        tensors = load_file(str(path))
        return tensors["tensor"] if kind == "torch" else tensors
    if kind == "numpy-dict":
        from safetensors.numpy import load_file as load_numpy

        return load_numpy(str(path))
    return json.loads(path.read_text())


def load_bytes(data: bytes, kind: str) -> Any:
    """Like ``load``, from bytes already read and checked (the parent's side)."""
    if kind == "numpy":
        import numpy as np

        return np.load(io.BytesIO(data), allow_pickle=False)
    if kind == "pandas":
        import pyarrow as pa
        import pyarrow.parquet as pq

        return pq.read_table(pa.BufferReader(data)).to_pandas()
    if kind in ("torch", "torch-dict"):
        from safetensors.torch import load as load_torch

        tensors = load_torch(data)
        return tensors["tensor"] if kind == "torch" else tensors
    if kind == "numpy-dict":
        from safetensors.numpy import load as load_numpy

        return load_numpy(data)
    if kind == "json":
        return json.loads(data)
    raise UnsafeValueError(f"unknown format {kind!r}")


def parquet_size(data: bytes) -> int:
    """Bytes a Parquet file's row groups take uncompressed (from its footer only)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(pa.BufferReader(data)).metadata
    return sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))


def kind_of_bytes(suffix: str, data: bytes) -> str | None:
    """The format of a file written by ``save``, from its suffix (safetensors: its header)."""
    if suffix == ".safetensors":
        size = int.from_bytes(data[:8], "little")
        header = json.loads(data[8:8 + size])
        declared = str(header.get("__metadata__", {}).get("securenb.kind", ""))
        if declared in ("torch-dict", "numpy-dict"):
            return declared
        return "torch" if [k for k in header if k != "__metadata__"] == ["tensor"] else (
            "torch-dict")
    for kind, ext in EXTENSIONS.items():
        if suffix == ext:
            return kind
    return None
