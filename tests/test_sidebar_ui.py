"""The JupyterLab sidebar's own test suites, run from pytest so that `make test` runs them.

- jest: unit tests of the TypeScript (layout, badges, API client, list window, chart).
- galata: UI tests in Debian's Chromium against real `jupyter lab` servers with the installed
  prebuilt extension: one with the fixture securenb API (tests/ui_fixture_api.py) for every
  panel state, one with the real server extension where a real kernel runs the example
  notebook. Nothing is skipped: a missing browser or Node toolchain fails with the reason.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.pop("CI", None)  # galata's reporters change with CI; ours are set in the config
    env.update(extra)
    return env


def _jlpm() -> str:
    jlpm = shutil.which("jlpm", path=_env()["PATH"])
    assert jlpm, "jlpm not found: `pip install -e '.[dev]'` installs it (jupyter-builder)"
    if not (REPO / "node_modules").is_dir():
        subprocess.run([jlpm, "install"], cwd=REPO, env=_env(), check=True)
    return jlpm


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_typescript_unit_tests_pass() -> None:
    r = subprocess.run(
        [_jlpm(), "jest", "--ci"], cwd=REPO, env=_env(), capture_output=True, text=True
    )
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    assert "failed" not in r.stderr.split("Tests:")[-1].splitlines()[0]


def test_prebuilt_extension_is_installed_and_enabled() -> None:
    r = subprocess.run(
        [str(BIN / "jupyter"), "labextension", "list"],
        env=_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    line = next((ln for ln in (r.stdout + r.stderr).splitlines() if "securenb v" in ln), "")
    assert "enabled" in line and "OK" in line, r.stdout + r.stderr


@pytest.mark.slow
def test_galata_ui_tests_pass_and_skip_nothing(tmp_path: Path) -> None:
    chromium = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
    assert Path(chromium).exists(), f"{chromium} missing: run scripts/system-deps.sh"
    ui = REPO / "ui-tests"
    results = ui / "test-results" / "results.json"
    results.unlink(missing_ok=True)
    env = _env(
        SECURENB_UI_PORT=str(_free_port()),
        SECURENB_UI_REAL_PORT=str(_free_port()),
        SECURENB_UI_ROOT=str(tmp_path / "fixture"),
        SECURENB_UI_REAL_ROOT=str(tmp_path / "real"),
        JUPYTER_BIN=str(BIN / "jupyter"),
        CHROMIUM_PATH=chromium,
    )
    r = subprocess.run(
        [_jlpm(), "playwright", "test"],
        cwd=ui,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    print(r.stdout[-6000:])
    assert r.returncode == 0, r.stdout[-8000:] + r.stderr[-4000:]
    stats = json.loads(results.read_text())["stats"]
    assert stats["unexpected"] == 0 and stats["skipped"] == 0 and stats["flaky"] == 0, stats
    assert stats["expected"] >= 10, stats
    paint = json.loads((ui / "test-results" / "first-paint.json").read_text())
    print(
        f"first paint with 1,000 artifacts: open {paint['open_ms']:.0f} ms, "
        f"refetch+paint {paint['refetch_ms']:.0f} ms"
    )
