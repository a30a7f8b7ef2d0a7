"""`securenb run` over a parameter grid or a folder: parallel runs, summary, --json."""

from __future__ import annotations

import json
from typing import Any

import pytest
from runs_support import example, load, notebook, run, statement

from securenb.core.store import file_sha256
from securenb.core.workspace import Workspace


@pytest.fixture
def ws(workspace: Any) -> Workspace:
    # pytest makes tmp_path 0700; the sandbox's user must be able to enter the project
    workspace.root.chmod(0o755)
    return workspace  # type: ignore[no-any-return]


def test_grid_runs_in_parallel_each_with_its_own_signed_record(ws: Workspace) -> None:
    nb = example(ws.root)
    proc = run("securenb", "run", nb.name, "batch", "--grid", "lr=0.1,0.5",
               "--grid", "epochs=[5, 10]", "--jobs", "2", "--json", cwd=ws.root, check=True)
    data = json.loads(proc.stdout)
    assert data["ok"] is True and data["completed"] == 4
    combos = [(r["parameters"]["lr"], r["parameters"]["epochs"]) for r in data["runs"]]
    assert combos == [(0.1, 5), (0.1, 10), (0.5, 5), (0.5, 10)]
    run_ids = {r["run_id"] for r in data["runs"]}
    assert len(run_ids) == 4 and all(r["verdict"] == "verified" for r in data["runs"])
    for entry in data["runs"]:
        out = load(ws.root / entry["output"])
        st = statement(out)
        ext = st["predicate"]["buildDefinition"]["externalParameters"]
        assert json.loads(ext["parameters"]) == entry["parameters"]
        assert ext["outputDir"] == entry["output_dir"]
        # each run's artifacts are its own files, though the runs ran side by side
        subjects = {s["name"]: s["digest"]["sha256"] for s in st["subject"][1:]}
        model = f"{entry['output_dir']}/model.npy"
        assert set(subjects) == {model, f"{entry['output_dir']}/metrics.json"}
        assert subjects[model] == file_sha256(ws.root / model)[0]
        metrics = json.loads((ws.root / entry["output_dir"] / "metrics.json").read_text())
        assert (metrics["lr"], metrics["epochs"]) == (entry["parameters"]["lr"],
                                                       entry["parameters"]["epochs"])


def test_folder_batch_summary_names_the_failed_run(ws: Workspace) -> None:
    folder = ws.root / "nbs"
    folder.mkdir()
    notebook(folder / "a.ipynb", "print('a')")
    notebook(folder / "b.ipynb", "raise RuntimeError('bad b')")
    proc = run("securenb", "run", "nbs", "out", "--jobs", "2", cwd=ws.root)
    assert proc.returncode == 1
    rows = [line for line in proc.stdout.splitlines() if ".ipynb" in line]
    assert any("a.ipynb" in r and "completed" in r and "verified" in r for r in rows)
    assert any("b.ipynb" in r and "failed" in r and "verified" in r for r in rows)
    assert (ws.root / "out" / "a.ipynb").exists() and (ws.root / "out" / "b.ipynb").exists()


def test_batch_bad_grid_is_one_line_error(ws: Workspace) -> None:
    nb = notebook(ws.root / "in.ipynb", "print(1)")
    proc = run("securenb", "run", nb.name, "out", "--grid", "lr", cwd=ws.root)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("error: --grid 'lr': expected NAME=V1,V2,... or "
                                   "NAME=[json list]")
    assert not (ws.root / "out").exists()
