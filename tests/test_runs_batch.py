"""`securenb run` over a parameter grid or a folder: parallel runs, summary, --json."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from typing import Any

import pytest
from runs_support import BIN, example, load, notebook, run, statement

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


def test_a_terminated_batch_ends_its_runs_as_killed_with_no_output(ws: Workspace) -> None:
    """CI cancelling a batch (SIGTERM to `securenb run` only) ends every run it started:
    none goes on to sign an output after the batch was cancelled, each is audited killed."""
    nb = notebook(ws.root / "slow.ipynb", "print('started', flush=True)",
                  "import time\ntime.sleep(120)", parameters="n = 0")
    proc = subprocess.Popen([str(BIN / "securenb"), "run", nb.name, "out", "--grid", "n=1,2,3",
                             "--jobs", "2", "--no-progress-bar"], cwd=ws.root, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:  # until both running runs are in their 2nd cell
            assert proc.poll() is None, proc.communicate()
            cells = [r.entry for r in ws.audit_log.read() if r.entry.action == "run.cell"]
            if len({e.details["run"] for e in cells}) == 2:
                break
            time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0
    entries = [r.entry for r in ws.audit_log.read()]
    started = [e for e in entries if e.action == "run.start"]
    finished = [e for e in entries if e.action == "run.finish"]
    assert len(started) == 2  # the third run never started
    assert sorted(e.details["status"] for e in finished) == ["killed", "killed"]
    time.sleep(2)  # a run that went on would now be writing its output
    assert not list((ws.root / "out").glob("*.ipynb"))
    assert not list((ws.root / "out").glob(".*"))  # no scratch folder left either
