"""The panel follows its notebook: what a notebook's kernel trained is listed under it.

Real `jupyter server`, a real kernel started for a session with a notebook path (what
JupyterLab does when a notebook opens), a real bwrap ``%%secure_train`` run; then the
REST catalog filtered by that notebook, as the panel asks for it.
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_server_dataset import _call, run_cell
from test_server_signing import PASSPHRASE, TOKEN, Server, running_server

from securenb.core.workspace import Workspace
from securenb.isolation.session import session_notebook

NOTEBOOK = "experiments/train.ipynb"
TRAIN = """%load_ext securenb
%%secure_train
from securenb.sandbox import output_dir
(output_dir() / "model.json").write_text('{"weights": [1, 2, 3]}')
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    base = tmp_path_factory.mktemp("notebook-link")
    root, runtime = base / "project", base / "runtime"
    (root / "experiments").mkdir(parents=True)
    (root / NOTEBOOK).write_text('{"cells": [], "metadata": {}, "nbformat": 4, '
                                 '"nbformat_minor": 5}')
    Workspace.init(root, PASSPHRASE)
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(runtime),
           "SECURENB_KEY_PASSPHRASE": PASSPHRASE, "JUPYTER_CONFIG_DIR": str(base / "config"),
           "JUPYTER_DATA_DIR": str(base / "data"), "IPYTHONDIR": str(base / "ipython")}
    with running_server(root, runtime, env, base / "server.log") as srv:
        yield srv


def _listed(server: Server, notebook: str) -> list[str]:
    query = urllib.parse.urlencode({"notebook": notebook})
    page = _call(server, TOKEN, "GET", f"/securenb/api/artifacts?{query}")
    return [item["path"] for item in page["items"]]


def test_a_notebooks_trained_model_is_listed_under_that_notebook(server: Server) -> None:
    session = _call(server, TOKEN, "POST", "/api/sessions",
                    {"path": NOTEBOOK, "name": "train.ipynb", "type": "notebook",
                     "kernel": {"name": "python3"}})
    kernel_id = session["kernel"]["id"]
    # cells: magics must open them, so one cell loads the extension, the next trains
    load, train = TRAIN.split("%%secure_train", 1)
    status, out = run_cell(server, TOKEN, kernel_id, load)
    assert status == "ok", out
    status, out = run_cell(server, TOKEN, kernel_id, "%%secure_train" + train)
    assert status == "ok", out
    status, out = run_cell(server, TOKEN, kernel_id, "%sign_model outputs/model.json\n"
                           "%scan_model outputs/model.json\n")
    assert status == "ok", out

    listed = _listed(server, NOTEBOOK)
    assert "experiments/outputs/model.json" in listed, listed
    assert "experiments/outputs/model.json.sig" in listed, listed  # %sign_model's bundle
    assert _listed(server, "experiments/other.ipynb") == []
    runs = _call(server, TOKEN, "GET", "/securenb/api/runs")["items"]
    assert [r["notebook"] for r in runs] == [NOTEBOOK]
    detail = _call(server, TOKEN, "GET", "/securenb/api/artifacts/by-path?path="
                   "experiments/outputs/model.json")
    assert detail["notebook"] == NOTEBOOK
    assert detail["badges"]["signature"]["state"] != "unsigned"
    assert detail["badges"]["scan"]["state"] == "safe"


@pytest.mark.parametrize(("session", "expected"), [
    ("{root}/experiments/train.ipynb", "experiments/train.ipynb"),
    ("experiments/train.ipynb", "experiments/train.ipynb"),  # older servers: the API path
    ("{root}/../elsewhere/train.ipynb", None),  # outside the workspace
    ("{root}/experiments/link.ipynb", None),  # a link out of it
    ("{root}/experiments/Console 1", None),  # a console's session, not a notebook
    ("", None),
    (None, None),
])
def test_only_a_notebook_inside_the_workspace_is_named(tmp_path: Path, session: str | None,
                                                       expected: str | None) -> None:
    root = tmp_path / "project"
    (root / "experiments").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "train.ipynb").write_text("{}")
    (root / "experiments" / "link.ipynb").symlink_to(tmp_path / "elsewhere" / "train.ipynb")
    value = session.format(root=root) if session is not None else None
    assert session_notebook(root, value, root / "experiments") == expected
