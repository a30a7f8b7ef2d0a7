"""What an input notebook says about itself is not what its run records.

A notebook's own metadata (papermill's fields, its kernelspec) is the author's, stale or
planted; the signed output and its provenance say what the person running it gave and
what ran. Real papermill, real bwrap kernels, the real CLI.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nbformat
import pytest
from runs_support import load, notebook, run, statement, stdout_of, verify

from securenb.core.workspace import Workspace


@pytest.fixture
def ws(workspace: Any) -> Workspace:
    workspace.root.chmod(0o755)  # the sandbox's user must be able to enter the project
    return workspace  # type: ignore[no-any-return]


def _plant(path: Path, **metadata: Any) -> None:
    nb = nbformat.read(str(path), as_version=4)
    nb.metadata.update(metadata)
    nbformat.write(nb, str(path))


def _parameters(out: dict[str, Any]) -> Any:
    ext = statement(out)["predicate"]["buildDefinition"]["externalParameters"]
    return json.loads(ext["parameters"])


PLANTED = {"parameters": {"lr": 0.1}, "default_parameters": {"lr": 0.1},
           "environment_variables": {"CUDA_VISIBLE_DEVICES": "0,1"},
           "input_path": "s3://elsewhere/in.ipynb"}


@pytest.mark.parametrize("tool", ["securenb", "papermill"])
def test_planted_papermill_metadata_is_neither_recorded_nor_kept(ws: Workspace,
                                                                 tool: str) -> None:
    path = notebook(ws.root / "in.ipynb", "lr = 999\nprint(lr)")
    _plant(path, papermill=PLANTED)
    engine = ("--engine", "securenb") if tool == "papermill" else ("run",)
    run(tool, *engine, "--no-progress-bar", path.name, "out.ipynb", cwd=ws.root, check=True)
    out = load(ws.root / "out.ipynb")
    assert stdout_of(out, 0).strip() == "999"
    assert _parameters(out) == {}
    shown = out["metadata"]["papermill"]
    assert shown["parameters"] == {} and shown["default_parameters"] == {}
    assert shown["environment_variables"] == {}
    assert shown["input_path"] == "in.ipynb"
    assert out["metadata"]["kernelspec"]["name"] == "securenb-bwrap"
    assert verify(ws, ws.root / "out.ipynb").verified


def test_given_parameters_are_recorded_by_plain_papermill_over_planted_ones(
        ws: Workspace) -> None:
    path = notebook(ws.root / "in.ipynb", "print(lr)", parameters="lr = 1")
    _plant(path, papermill=PLANTED)
    run("papermill", "--engine", "securenb", "--no-progress-bar", path.name, "out.ipynb",
        "-p", "lr", "0.1", cwd=ws.root, check=True)  # the same value as planted: still given
    out = load(ws.root / "out.ipynb")
    assert stdout_of(out, 2).strip() == "0.1"  # parameters, injected, print
    assert _parameters(out) == {"lr": 0.1}
    assert verify(ws, ws.root / "out.ipynb").verified


@pytest.mark.parametrize("tool", ["securenb", "papermill"])
def test_a_notebooks_own_kernelspec_does_not_choose_its_sandbox(ws: Workspace,
                                                                tool: str) -> None:
    """`unsafe-local` (or any backend) is chosen by the person running, else the policy;
    never by the kernelspec the notebook's author saved."""
    marker = ws.root / "written-outside-the-sandbox"
    path = notebook(ws.root / "in.ipynb", f"open({str(marker)!r}, 'w').write('host')")
    _plant(path, kernelspec={"name": "securenb-unsafe-local", "language": "python",
                             "display_name": "x"})
    engine = ("--engine", "securenb") if tool == "papermill" else ("run",)
    proc = run(tool, *engine, "--no-progress-bar", path.name, "out.ipynb", cwd=ws.root)
    assert proc.returncode != 0  # the project is read-only in the sandbox
    assert not marker.exists()
    st = statement(load(ws.root / "out.ipynb"))
    assert st["predicate"]["buildDefinition"]["externalParameters"]["isolation"] == "bwrap"
    assert st["predicate"]["buildDefinition"]["internalParameters"]["unsafe"] is False
