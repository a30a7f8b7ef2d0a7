"""Helpers of the run tests: a project with the example notebook, real papermill and CLI."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "notebooks" / "03-papermill-run.ipynb"
BIN = Path(sys.executable).parent


def notebook(path: Path, *sources: str, parameters: str | None = None) -> Path:
    """Write a notebook of code cells; ``parameters`` becomes the tagged parameters cell."""
    nb = nbformat.v4.new_notebook()
    cells = []
    if parameters is not None:
        cell = nbformat.v4.new_code_cell(parameters)
        cell.metadata.tags = ["parameters"]
        cells.append(cell)
    cells += [nbformat.v4.new_code_cell(s) for s in sources]
    nb.cells = cells
    nb.metadata.kernelspec = {"name": "python3", "display_name": "Python 3",
                              "language": "python"}
    nbformat.write(nb, str(path))
    return path


def example(project: Path) -> Path:
    target = project / EXAMPLE.name
    shutil.copy(EXAMPLE, target)
    return target


def run(tool: str, *args: str, cwd: Path, check: bool = False,
        env: dict[str, str] | None = None, timeout: float = 240
        ) -> subprocess.CompletedProcess[str]:
    """``papermill`` or ``securenb`` of this environment, as a user runs it."""
    proc = subprocess.run([str(BIN / tool), *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{tool} {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n"
                             f"{proc.stderr}")
    return proc


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def statement(nb: dict[str, Any]) -> dict[str, Any]:
    envelope = nb["metadata"]["securenb"]["provenance"]
    return json.loads(base64.b64decode(envelope["payload"]))  # type: ignore[no-any-return]


def byproduct(nb: dict[str, Any], name: str) -> dict[str, Any]:
    items = statement(nb)["predicate"]["runDetails"]["byproducts"]
    return next(b["annotations"] for b in items if b["name"] == name)  # type: ignore[no-any-return]


def stdout_of(nb: dict[str, Any], index: int) -> str:
    """The stdout text of code cell ``index`` (counting code cells only)."""
    cells = [c for c in nb["cells"] if c["cell_type"] == "code"]
    outs = cells[index]["outputs"]
    return "".join("".join(o["text"]) if isinstance(o["text"], list) else o["text"]
                   for o in outs if o.get("output_type") == "stream")


def verify(ws: Any, path: Path) -> Any:
    from securenb.signing import service

    return service.verify(ws, path)
