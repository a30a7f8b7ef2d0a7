"""The README's demo leaves a workspace the Security panel shows when `jupyter lab` opens on it.

`make demo` runs scripts/demo.py in the repository: a workspace, encrypted data, the example
notebook in a real kernel (%%secure_train in bwrap, %scan_model, %sign_model, %bias_check,
the gate). Here the same script runs in a copy of what it needs, then a real jupyter_server
with the securenb extension opens that folder, and the panel's requests are made: the list it
shows with no notebook open (the whole workspace), and the model's detail.
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from tornado.httpclient import HTTPResponse
from traitlets.config import Config

pytest_plugins = ("pytest_jupyter.jupyter_server",)

REPO = Path(__file__).resolve().parent.parent
PASSPHRASE = "demo test passphrase"  # a test-only passphrase
SPEC = json.loads((REPO / "securenb/server/openapi.json").read_text())

Fetch = Callable[..., Awaitable[HTTPResponse]]


def conforms(data: Any, name: str) -> None:
    schema = {"$ref": f"#/components/schemas/{name}", "components": SPEC["components"]}
    jsonschema.validate(data, schema, cls=jsonschema.Draft202012Validator)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder after `make demo` (scripts/demo.py run there, as the Makefile runs it)."""
    base = tmp_path_factory.mktemp("demo")
    root = base / "project"
    (root / "scripts").mkdir(parents=True)
    shutil.copy(REPO / "scripts" / "demo.py", root / "scripts" / "demo.py")
    shutil.copytree(REPO / "notebooks", root / "notebooks")
    env = {**os.environ, "SECURENB_KEY_PASSPHRASE": PASSPHRASE,
           "XDG_CONFIG_HOME": str(base / "xdg"), "XDG_STATE_HOME": str(base / "state")}
    run = subprocess.run([sys.executable, "scripts/demo.py"], cwd=root, env=env,
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "demo finished" in run.stdout
    return root


@pytest.fixture
def jp_root_dir(demo: Path) -> Path:
    return demo


@pytest.fixture
def jp_server_config(demo: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(demo.parent / "xdg"))
    monkeypatch.setenv("XDG_STATE_HOME", str(demo.parent / "state"))
    monkeypatch.setenv("SECURENB_KEY_PASSPHRASE", PASSPHRASE)
    return Config({"ServerApp": {"jpserver_extensions": {"securenb.server": True}}})


async def get(fetch: Fetch, *path: str, **params: Any) -> Any:
    response = await fetch("securenb", "api", *path, params=params or None)
    return json.loads(response.body)


@pytest.mark.slow
async def test_the_panel_shows_the_demo_workspace(jp_fetch: Fetch, demo: Path) -> None:
    page = await get(jp_fetch, "artifacts", limit="500")  # no notebook open: the workspace
    conforms(page, "ArtifactPage")  # every badge state is one the panel knows
    rows = {a["path"]: a for a in page["items"]}
    assert {"outputs/model.npy", "outputs/model.npy.sig", "demo-output/train.csv.enc"} <= set(rows)

    model = rows["outputs/model.npy"]
    badges = model["badges"]
    assert model["kind"] == "model" and model["run_id"]
    user = os.environ.get("SECURENB_ACTOR") or getpass.getuser()
    assert badges["signature"]["state"] == "signed"
    assert badges["signature"]["signer"] == user  # a person, not a key fingerprint
    assert len(badges["signature"]["key_id"]) == 64
    assert badges["scan"] == {"state": "safe", "findings": 0}
    assert badges["fairness"]["state"] == "pass"
    assert badges["gate"]["state"] == "pass"
    assert rows["demo-output/train.csv.enc"]["kind"] == "dataset"

    detail = await get(jp_fetch, "artifacts", "by-path", path="outputs/model.npy")
    conforms(detail, "ArtifactDetail")
    assert detail["signature"]["verified"] is True and detail["signature"]["identity"] == user
    kinds = {n["kind"] for n in detail["provenance"]["nodes"]}
    assert {"model", "run", "dataset", "signature", "scan", "fairness", "gate"} <= kinds
    assert detail["gate"]["verdict"] == "pass" and detail["fairness"]["metrics"]
    assert detail["audit"] and all(e["inclusion"] == "verified" for e in detail["audit"])
    runs = await get(jp_fetch, "runs")
    assert any(r["id"] == model["run_id"] and r["status"] == "ok" for r in runs["items"])
