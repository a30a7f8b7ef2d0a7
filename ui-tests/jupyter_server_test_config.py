"""jupyter lab for the sidebar UI tests: galata's settings, a fresh root folder with a
model, a dataset and a notebook, and the fixture securenb API in place of the real one."""

import json
import os
import pickle
import sys
from pathlib import Path
from tempfile import mkdtemp

from jupyterlab.galata import configure_jupyter_server

c = get_config()  # type: ignore[name-defined]  # noqa: F821
configure_jupyter_server(c)

root = Path(os.environ.get("SECURENB_UI_ROOT") or mkdtemp(prefix="securenb-ui-"))
(root / "outputs").mkdir(parents=True, exist_ok=True)
(root / "data").mkdir(exist_ok=True)
(root / "outputs" / "model.pkl").write_bytes(pickle.dumps({"weights": [0.1, 0.2, 0.3]}))
(root / "data" / "train.csv").write_text("age,income,label\n31,52000,1\n45,61000,0\n")
NOTEBOOK = {
    "cells": [{"cell_type": "markdown", "id": "a1", "metadata": {}, "source": ["# Pipeline"]}],
    "metadata": {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
    },
    "nbformat": 4,
    "nbformat_minor": 5,
}
(root / "pipeline.ipynb").write_text(json.dumps(NOTEBOOK))

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
c.ServerApp.root_dir = str(root)
c.ServerApp.ip = "127.0.0.1"
c.ServerApp.port = int(os.environ.get("SECURENB_UI_PORT", "8899"))
c.ServerApp.allow_root = True
c.ServerApp.jpserver_extensions = {"securenb.server": False, "ui_fixture_api": True}
c.LabApp.news_url = None
c.LabApp.check_for_updates_class = "jupyterlab.NeverCheckForUpdate"
