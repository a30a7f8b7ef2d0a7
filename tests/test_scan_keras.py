"""Keras models built by Keras itself, with Keras' own loader as the reference.

``scripts/keras_scan_samples.py`` (``make_scan_corpus.keras_built_samples``) saves benign
and hostile models with real Keras 3 (torch backend): Lambda layers carrying code as
``.keras``, legacy ``.h5``, nested in a wrapped sub-model, in a ``.keras`` without
``metadata.json`` and in an unzipped model folder, and ``.keras`` files whose
config.json was edited to import other functions and classes. ``keras.saving.load_model``
then loads each one with ``safe_mode`` on and off, in a fresh forked child: it decides
what the file really does. The scanner must call every file that runs code (or that
Keras refuses as not a model) UNSAFE, and every model Keras writes and loads SAFE.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from scan_corpus.loader import generator
from scan_corpus.sandbox import throwaway

from securenb.scan import Verdict, scan_path

GEN = generator()
BENIGN = ["kb01", "kb02", "kb03", "kb04", "kb05", "kb06", "kb07"]
RUNS_CODE = ["kr01", "kr02", "kr03", "kr04", "kr05"]  # Lambda layers: run with safe_mode off
CONFIG_TRICKS = ["kr06", "kr07", "kr08", "kr09"]  # CVE-2025-1550/-9906 style edits


def keras_load(marker: Path, paths: list[Path]) -> Any:
    """Keras' own loader on each path, in a fresh process in a throwaway sandbox (Keras
    picks its backend at import; a hostile load may change Keras' global state, so each
    load is forked)."""
    env = {**os.environ, "KERAS_BACKEND": "torch"}
    done = subprocess.run(
        throwaway(
            [sys.executable, str(GEN.KERAS_SAMPLES), "load", str(marker), *map(str, paths)],
            marker.parent,
        ),
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Path], dict[str, Any]]:
    root = tmp_path_factory.mktemp("keras")
    marker = root / "ran"
    corpus = GEN.Corpus(root / "models")
    GEN.keras_built_samples(corpus, f"touch {marker}")
    paths = {s.id: root / "models" / s.path for s in corpus.samples}
    loads = keras_load(marker, list(paths.values()))
    return paths, {sid: loads[str(path)] for sid, path in paths.items()}


def rules(path: Path) -> set[str]:
    return {f.rule for f in scan_path(path).all_findings()}


def test_samples_cover_every_class(built: tuple[dict[str, Path], dict[str, Any]]) -> None:
    paths, _ = built
    assert sorted(paths) == sorted(BENIGN + RUNS_CODE + CONFIG_TRICKS)
    assert paths["kr05"].is_dir() and (paths["kr05"] / "config.json").is_file()


@pytest.mark.parametrize("sid", BENIGN)
def test_models_keras_writes_are_safe(
    built: tuple[dict[str, Path], dict[str, Any]], sid: str
) -> None:
    paths, loads = built
    assert loads[sid] == {"safe": "loaded", "unsafe": "loaded"}
    report = scan_path(paths[sid])
    assert report.verdict is Verdict.SAFE, [f.message for f in report.all_findings()]


@pytest.mark.parametrize("sid", RUNS_CODE)
def test_lambda_code_runs_in_keras_and_is_unsafe(
    built: tuple[dict[str, Path], dict[str, Any]], sid: str
) -> None:
    paths, loads = built
    assert loads[sid]["safe"].startswith("ValueError: Requested the deserialization of a `Lambda`")
    assert loads[sid]["unsafe"] == "loaded +ran", "safe_mode=False must run the payload"
    report = scan_path(paths[sid])
    assert report.verdict is Verdict.UNSAFE
    assert "keras.lambda" in rules(paths[sid])
    for finding in report.all_findings():
        assert "\n" not in finding.message and " object at 0x" not in finding.message


@pytest.mark.parametrize("sid", CONFIG_TRICKS)
def test_edited_configs_are_unsafe(built: tuple[dict[str, Path], dict[str, Any]], sid: str) -> None:
    """Keras 3.15 refuses these edits in both modes (older Keras imported and called
    them); nothing Keras writes looks like this, so the scanner calls them UNSAFE."""
    paths, loads = built
    for mode in ("safe", "unsafe"):
        assert not loads[sid][mode].startswith("loaded"), loads[sid]
    assert scan_path(paths[sid]).verdict is Verdict.UNSAFE
    assert "keras.module-not-allowed" in rules(paths[sid])
