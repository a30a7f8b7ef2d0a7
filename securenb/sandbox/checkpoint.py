"""Checkpoints inside the sandbox: safe formats, a digest manifest, atomic publication.

A checkpoint is a folder ``<output>/checkpoints/step-<NNNNNNNNN>/`` holding the
tensors (safetensors), the rest of the state (JSON) and ``MANIFEST.json`` with
the SHA-256 of each file. It is written under a temporary name and renamed
into place, so a crash never leaves a half checkpoint under a real name. The
parent records every file as an artifact after the run; ``--resume`` hands
back the newest checkpoint whose files match both the manifest and those
records.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from securenb.sandbox import formats

CHECKPOINTS = "checkpoints"
MANIFEST = "MANIFEST.json"
STATE = "state.safetensors"
META = "meta.json"


@dataclass(frozen=True)
class Checkpoint:
    """A restored checkpoint: its step and the object that was saved."""

    step: int
    state: Any
    path: Path


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _split(obj: Any, prefix: str, tensors: dict[str, Any]) -> Any:
    """Tensors/arrays into ``tensors`` (flat keys); the rest stays as a JSON skeleton."""
    kind = type(obj).__module__.split(".")[0], type(obj).__name__
    if kind in (("torch", "Tensor"), ("torch", "Parameter"), ("numpy", "ndarray")):
        tensors[prefix] = obj
        return {"__tensor__": prefix}
    if hasattr(obj, "state_dict") and callable(obj.state_dict):
        return _split(obj.state_dict(), prefix, tensors)
    if isinstance(obj, dict):
        if not all(isinstance(k, (str, int)) for k in obj):
            raise formats.UnsafeValueError("checkpoint dict keys must be str or int")
        return {"__dict__": [[k, _split(v, f"{prefix}.{k}", tensors)] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return [_split(v, f"{prefix}.{i}", tensors) for i, v in enumerate(obj)]
    formats.kind_of(obj)  # JSON-able or a clear error
    return obj


def _join(skeleton: Any, tensors: dict[str, Any]) -> Any:
    if isinstance(skeleton, dict) and "__tensor__" in skeleton:
        return tensors[skeleton["__tensor__"]]
    if isinstance(skeleton, dict) and "__dict__" in skeleton:
        return {k: _join(v, tensors) for k, v in skeleton["__dict__"]}
    if isinstance(skeleton, list):
        return [_join(v, tensors) for v in skeleton]
    return skeleton


def save_checkpoint(obj: Any, step: int, output_dir: Path) -> Path:
    """Write ``obj`` (state_dict, model, optimizer, nested dicts of tensors) at ``step``."""
    if not isinstance(step, int) or step < 0:
        raise ValueError(f"checkpoint step must be a non-negative int, got {step!r}")
    root = output_dir / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:09d}"
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root))
    try:
        tensors: dict[str, Any] = {}
        skeleton = _split(obj, "state", tensors)
        framework = "numpy"
        if any(type(t).__module__.startswith("torch") for t in tensors.values()):
            import torch
            from safetensors.torch import save_file

            framework = "torch"
            save_file({k: torch.as_tensor(t).detach().contiguous().cpu()
                       for k, t in tensors.items()}, str(tmp / STATE))
        elif tensors:
            from safetensors.numpy import save_file as save_numpy

            save_numpy(tensors, str(tmp / STATE))
        (tmp / META).write_text(json.dumps({"framework": framework, "skeleton": skeleton}))
        files = {p.name: file_digest(p) for p in sorted(tmp.iterdir())}
        (tmp / MANIFEST).write_text(json.dumps({"step": step, "files": files}, sort_keys=True))
        for p in tmp.iterdir():
            os.chmod(p, 0o444)
        if final.exists():
            shutil.rmtree(final)
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """The manifest if it is well-formed and every file matches its digest, else None."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        files = manifest["files"]
        if not isinstance(manifest["step"], int) or not isinstance(files, dict):
            return None
        for name, digest in files.items():
            path = folder / name
            if "/" in name or path.is_symlink() or not path.is_file():
                return None
            if file_digest(path) != digest:
                return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return dict(manifest)


def load_checkpoint(folder: Path, expected: dict[str, str]) -> Checkpoint:
    """Load a checkpoint the parent verified; refuse it if any digest changed since."""
    manifest = read_manifest(folder)
    if manifest is None or manifest["files"] != expected:
        raise ValueError(f"{folder}: checkpoint changed since it was verified; not loading it")
    meta = json.loads((folder / META).read_text())
    tensors: dict[str, Any] = {}
    if (folder / STATE).exists():
        if meta["framework"] == "torch":
            from safetensors.torch import load_file

            tensors = load_file(str(folder / STATE))
        else:
            from safetensors.numpy import load_file as load_numpy

            tensors = load_numpy(str(folder / STATE))
    return Checkpoint(int(manifest["step"]), _join(meta["skeleton"], tensors), folder)
