"""Helpers for code running inside a securenb sandbox (``%%secure_train`` cells).

    import securenb.sandbox as sb
    df = sb.read_csv("data")                 # --inputs data=train.csv.enc, decrypted in memory
    ckpt = sb.restore()                      # set by --resume, else None
    start = ckpt.step + 1 if ckpt else 0
    for step in range(start, steps):
        ...
        sb.checkpoint(model.state_dict(), step)

Everything written here lands in the run's output folder in safe formats
(safetensors, JSON) with digests, so the parent can record and verify it
without unpickling anything.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from securenb.sandbox import _session
from securenb.sandbox.checkpoint import Checkpoint, save_checkpoint
from securenb.sandbox.datasets import dataset, load_numpy, read_csv, read_parquet

__all__ = ["Checkpoint", "checkpoint", "dataset", "in_sandbox", "load_numpy", "output_dir",
           "read_csv", "read_parquet", "restore"]


def in_sandbox() -> str | None:
    """The backend this code runs under (``bwrap``, ``podman`` ...), or None outside one."""
    return os.environ.get("SECURENB_SANDBOX")


def output_dir() -> Path:
    """The one folder this sandbox may write (and the parent will read)."""
    folder = _session.state.output_dir or os.environ.get("SECURENB_OUTPUT_DIR")
    if not folder:
        raise RuntimeError("no output folder: run the cell with %%secure_train")
    return Path(folder)


def checkpoint(obj: Any, step: int) -> Path:
    """Save ``obj`` (a state_dict, model, optimizer or nested dict of tensors) at ``step``."""
    return save_checkpoint(obj, step, output_dir())


def restore() -> Checkpoint | None:
    """The newest verified checkpoint when the run was started with ``--resume``."""
    return _session.restore()
