"""The sandbox side of one ``%%secure_train`` run, called by the parent's prelude/postlude.

``begin`` loads the declared input variables (verified against the digests the
parent computed) into the kernel's namespace and tells the helpers where the
output folder, the checkpoint to resume from and the encrypted datasets are.
``end`` writes the declared output variables to ``<output>/variables/`` in safe formats.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from securenb.sandbox import datasets, formats
from securenb.sandbox.checkpoint import Checkpoint, load_checkpoint

VARIABLES = "variables"


class _State:
    output_dir: Path | None = None
    resume: dict[str, Any] | None = None
    restored: Checkpoint | None = None


state = _State()


def _namespace() -> dict[str, Any]:
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None:
        raise RuntimeError("securenb.sandbox: not running in an IPython kernel")
    ns: dict[str, Any] = shell.user_ns
    return ns


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def begin(config_json: str) -> None:
    config = json.loads(config_json)
    state.output_dir = Path(config["output_dir"]) if config.get("output_dir") else None
    state.resume = config.get("resume")
    state.restored = None
    datasets.configure(config.get("datasets", {}))
    ns = _namespace()
    for item in config.get("inputs", []):
        path = Path(item["file"])
        if _sha256(path) != item["sha256"]:
            raise ValueError(f"input {item['name']!r}: {path} changed after it was staged")
        ns[item["name"]] = formats.load(path, item["kind"])


def restore() -> Checkpoint | None:
    """The checkpoint ``--resume`` chose (verified by the parent), else None."""
    if state.resume is None:
        return None
    if state.restored is None:
        state.restored = load_checkpoint(Path(state.resume["path"]), state.resume["files"])
    return state.restored


def end(config_json: str) -> None:
    config = json.loads(config_json)
    names = config.get("outputs", [])
    if not names:
        return
    if state.output_dir is None:
        raise RuntimeError("--outputs needs an output folder")
    folder = state.output_dir / VARIABLES
    folder.mkdir(parents=True, exist_ok=True)
    ns = _namespace()
    for name in names:
        if name not in ns:
            raise NameError(f"--outputs {name}: the cell did not define {name!r}")
        for suffix in set(formats.EXTENSIONS.values()):
            (folder / f"{name}{suffix}").unlink(missing_ok=True)
        formats.save(ns[name], folder / name)
