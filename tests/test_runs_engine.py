"""`papermill --engine securenb`: papermill's options still work, every run is a signed record.

Real papermill (its CLI, as a user runs it), real ipykernel in a real bwrap sandbox.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from runs_support import byproduct, example, load, notebook, run, statement, stdout_of, verify

from securenb.core.workspace import Workspace


@pytest.fixture
def ws(workspace: Any) -> Workspace:
    # pytest makes tmp_path 0700; the sandbox's user must be able to enter the project
    workspace.root.chmod(0o755)
    return workspace  # type: ignore[no-any-return]


def papermill(project: Path, *args: str, check: bool = True) -> Any:
    return run("papermill", "--engine", "securenb", "--no-progress-bar", *args, cwd=project,
               check=check)


def test_example_notebook_runs_signed_attested_and_audited(ws: Workspace) -> None:
    nb_path = example(ws.root)
    papermill(ws.root, nb_path.name, "out.ipynb", "-p", "lr", "0.1", "-p", "epochs", "20")
    out = load(ws.root / "out.ipynb")
    # parameters reached the kernel with their types
    assert json.loads(stdout_of(out, 2)) == {"lr": ["float", 0.1], "epochs": ["int", 20],
                                             "seed": ["int", 0]}
    result = verify(ws, ws.root / "out.ipynb")
    assert result.verified, result.problems
    assert any("completed (exit 0), sandbox bwrap" in n for n in result.notes)
    st = statement(out)
    assert st["predicateType"] == "https://slsa.dev/provenance/v1"
    ext = st["predicate"]["buildDefinition"]["externalParameters"]
    assert json.loads(ext["parameters"]) == {"lr": 0.1, "epochs": 20}
    assert ext["kernel"] == "securenb-bwrap" and ext["isolation"] == "bwrap"
    from securenb.core.store import file_sha256

    assert ext["notebook"]["sha256"] == file_sha256(nb_path)[0]
    deps = {d["name"] for d in st["predicate"]["buildDefinition"]["resolvedDependencies"]}
    assert {"notebook", "kernel", "environment"} <= deps
    internal = st["predicate"]["buildDefinition"]["internalParameters"]
    assert internal["sandbox"]["backend"] == "bwrap" and internal["unsafe"] is False
    assert internal["sandbox"]["limits"]["memory_bytes"] > 0
    # every artifact written, by digest, and recorded in the workspace
    subjects = {s["name"]: s["digest"]["sha256"] for s in st["subject"]}
    for name in ("outputs/model.npy", "outputs/metrics.json"):
        assert subjects[name] == file_sha256(ws.root / name)[0]
    assert {a.path for a in ws.store.list_artifacts()} >= {"outputs/model.npy",
                                                           "outputs/metrics.json"}
    assert byproduct(out, "result") == {"status": "completed", "exitCode": 0}
    # one audit entry per executed cell, with start, end, status and digests
    run_id = st["predicate"]["runDetails"]["metadata"]["invocationId"]
    entries = [r.entry for r in ws.audit_log.read()]
    cells = [e.details for e in entries if e.action == "run.cell" and e.details["run"] == run_id]
    code_cells = [c for c in out["cells"]]
    assert [c["index"] for c in cells] == list(range(len(code_cells)))
    for details in cells:
        assert details["start"] <= details["end"] and details["status"] == "completed"
        assert len(details["source"]) == 64 and len(details["outputs"]) == 64
    assert [e.action for e in entries if e.details.get("run") == run_id
            or e.subject == f"run:{run_id}"][-1] == "run.finish"
    assert ws.store.get_run(run_id).status == "completed"


def test_kernel_runs_in_the_sandbox(ws: Workspace) -> None:
    secret_file = Path.home() / ".securenb-runs-test-secret"
    nb = notebook(ws.root / "in.ipynb", "import os, socket\n"
                  "print(os.environ.get('SECURENB_SANDBOX'), os.getuid())\n"
                  f"print(os.path.exists({str(secret_file)!r}))\n"
                  "print(os.path.exists('.securenb/keys'))\n"
                  "try:\n    socket.create_connection(('1.1.1.1', 53), timeout=2)\n"
                  "    print('network')\nexcept OSError:\n    print('no network')")
    secret_file.write_text("x")
    try:
        papermill(ws.root, nb.name, "out.ipynb")
    finally:
        secret_file.unlink()
    lines = stdout_of(load(ws.root / "out.ipynb"), 0).split()
    assert lines[0] == "1" or lines[0] != "None"  # SECURENB_SANDBOX is set inside
    assert int(lines[1]) != 0  # never root; the uid is the sandbox's own
    assert lines[2:] == ["False", "False", "no", "network"]


def test_kernel_option_picks_the_backend_and_refuses_unknown(ws: Workspace) -> None:
    nb = notebook(ws.root / "in.ipynb", "print(1)")
    papermill(ws.root, nb.name, "out.ipynb", "-k", "securenb-bwrap")
    ext = statement(load(ws.root / "out.ipynb"))["predicate"]["buildDefinition"]
    assert ext["externalParameters"]["kernel"] == "securenb-bwrap"
    bad = papermill(ws.root, nb.name, "bad.ipynb", "-k", "securenb-nosuch", check=False)
    assert bad.returncode != 0 and "no such securenb backend" in bad.stderr
    assert not (ws.root / "bad.ipynb").exists()


def test_policy_unsafe_local_needs_to_be_named(ws: Workspace) -> None:
    (ws.root / "securenb.toml").write_text('[isolation]\nbackend = "unsafe-local"\n')
    nb = notebook(ws.root / "in.ipynb", "import os\nprint(os.environ.get('SECURENB_SANDBOX'))")
    refused = papermill(ws.root, nb.name, "out.ipynb", check=False)
    assert refused.returncode != 0 and "must name it" in refused.stderr
    assert not (ws.root / "out.ipynb").exists()
    papermill(ws.root, nb.name, "out.ipynb", "-k", "securenb-unsafe-local")
    st = statement(load(ws.root / "out.ipynb"))
    internal = st["predicate"]["buildDefinition"]["internalParameters"]
    assert internal["unsafe"] is True and internal["unsafeRequested"] is True
    assert st["predicate"]["runDetails"]["builder"]["id"].endswith("/unsafe-local")
    notes = verify(ws, ws.root / "out.ipynb").notes
    assert any("UNSAFE" in n for n in notes)


def test_cwd_option_runs_the_kernel_there(ws: Workspace) -> None:
    data = ws.root / "data"
    data.mkdir()
    (data / "train.csv").write_text("a,b\n1,2\n")
    nb = notebook(ws.root / "in.ipynb", "print(open('train.csv').read().splitlines()[0])",
                  "open('outputs/copy.txt', 'w').write('x')")
    papermill(ws.root, nb.name, "out.ipynb", "--cwd", "data")
    out = load(ws.root / "out.ipynb")
    assert stdout_of(out, 0).strip() == "a,b"
    st = statement(out)
    assert st["predicate"]["buildDefinition"]["externalParameters"]["cwd"] == "data"
    assert "data/outputs/copy.txt" in {s["name"] for s in st["subject"]}
    assert verify(ws, ws.root / "out.ipynb").verified


def test_log_output_option(ws: Workspace) -> None:
    nb = notebook(ws.root / "in.ipynb", "print('hello from the sandbox')")
    proc = papermill(ws.root, nb.name, "out.ipynb", "--log-output")
    assert "hello from the sandbox" in proc.stderr + proc.stdout
    assert verify(ws, ws.root / "out.ipynb").verified


def test_execution_timeout_is_papermills_error_and_signed_failed(ws: Workspace) -> None:
    nb = notebook(ws.root / "in.ipynb", "print('start')", "import time\ntime.sleep(30)",
                  "print('never')")
    proc = papermill(ws.root, nb.name, "out.ipynb", "--execution-timeout", "2", check=False)
    assert proc.returncode != 0 and "CellTimeoutError" in proc.stderr
    out = load(ws.root / "out.ipynb")
    result = byproduct(out, "result")
    assert result["status"] == "failed" and result["exitCode"] == 1
    assert result["error"]["ename"] == "CellTimeoutError"
    checked = verify(ws, ws.root / "out.ipynb")  # a failed run does not pass for a completed one
    assert not checked.verified and checked.problems[0].startswith("run failed (exit 1)")
    assert checked.run is not None and checked.run["status"] == "failed"
    from securenb.signing import service

    record = service.verify(ws, ws.root / "out.ipynb", allow_failed=True)  # its record is intact
    assert record.verified and any("failed (exit 1)" in n for n in record.notes)


def test_parameters_file_and_yaml(ws: Workspace) -> None:
    nb = notebook(ws.root / "in.ipynb", "print(repr(cfg), repr(n))",
                  parameters="cfg = {}\nn = 0")
    (ws.root / "params.yaml").write_text("cfg: {depth: 3, rate: 0.5, tags: [a, b]}\nn: 7\n")
    papermill(ws.root, nb.name, "out.ipynb", "-f", "params.yaml")
    out = load(ws.root / "out.ipynb")
    assert stdout_of(out, 2).strip() == "{'depth': 3, 'rate': 0.5, 'tags': ['a', 'b']} 7"
    ext = statement(out)["predicate"]["buildDefinition"]["externalParameters"]
    assert json.loads(ext["parameters"]) == {"cfg": {"depth": 3, "rate": 0.5,
                                                     "tags": ["a", "b"]}, "n": 7}


def test_parameters_cell_tag_and_injected_cell(ws: Workspace) -> None:
    nb = notebook(ws.root / "in.ipynb", "print(lr)", parameters="lr = 1")
    papermill(ws.root, nb.name, "once.ipynb", "-p", "lr", "2")
    once = load(ws.root / "once.ipynb")
    tags = [c["metadata"].get("tags", []) for c in once["cells"]]
    assert tags[0] == ["parameters"] and tags[1] == ["injected-parameters"]
    assert stdout_of(once, 2).strip() == "2"
    # running an output again replaces its injected cell (papermill's behaviour)
    papermill(ws.root, "once.ipynb", "twice.ipynb", "-p", "lr", "3")
    twice = load(ws.root / "twice.ipynb")
    injected = [c for c in twice["cells"] if "injected-parameters" in
                c["metadata"].get("tags", [])]
    assert len(injected) == 1 and stdout_of(twice, 2).strip() == "3"
    assert "signature" in twice["metadata"]["securenb"]
    assert verify(ws, ws.root / "twice.ipynb").verified


def test_failed_cell_is_reported_as_papermill_does_and_signed_failed(ws: Workspace) -> None:
    nb = notebook(ws.root / "in.ipynb", "print('ok')", "raise ValueError('boom')",
                  "print('after')")
    proc = papermill(ws.root, nb.name, "out.ipynb", check=False)
    assert proc.returncode == 1
    assert "PapermillExecutionError" in proc.stderr and "ValueError: boom" in proc.stderr
    out = load(ws.root / "out.ipynb")
    markers = [c for c in out["cells"]
               if "papermill-error-cell-tag" in c["metadata"].get("tags", [])]
    assert len(markers) == 2  # papermill's error banner and the anchor before the cell
    assert out["metadata"]["papermill"]["exception"] is True
    result = byproduct(out, "result")
    assert result == {"status": "failed", "exitCode": 1,
                      "error": {"cell": 1, "ename": "ValueError", "evalue": "boom"}}
    from securenb.signing import service

    assert not verify(ws, ws.root / "out.ipynb").verified  # a failed run is no completed one
    checked = service.verify(ws, ws.root / "out.ipynb", allow_failed=True)
    assert checked.verified, checked.problems
    assert any("run failed: ValueError: boom" in n for n in checked.notes)


def test_saving_only_at_the_end_still_signs_under_the_output_name(ws: Workspace) -> None:
    nb = notebook(ws.root / "in.ipynb", "print(1)")
    papermill(ws.root, nb.name, "out.ipynb", "--no-request-save-on-cell-execute")
    result = verify(ws, ws.root / "out.ipynb")
    assert result.verified, result.problems


def test_stdout_output_is_the_signed_notebook_and_urls_are_refused(ws: Workspace) -> None:
    """papermill writes to stdout once, at the end: the engine hands it the signed notebook,
    signed under the name notebook.ipynb (it cannot know the file stdout goes to)."""
    nb = notebook(ws.root / "in.ipynb", "print(1)")
    proc = papermill(ws.root, nb.name, "-")
    printed = json.loads(proc.stdout)
    assert "signature" in printed["metadata"]["securenb"]
    assert statement(printed)["subject"][0]["name"] == "<in memory>"
    (ws.root / "notebook.ipynb").write_text(proc.stdout)
    assert verify(ws, ws.root / "notebook.ipynb").verified
    url = papermill(ws.root, nb.name, "s3://bucket/out.ipynb", check=False)
    assert url.returncode != 0 and "not a URL" in url.stderr


def test_yaml_raw_and_the_remaining_papermill_options(ws: Workspace) -> None:
    """-y, -r, --report-mode, --inject-paths, --stdout-file, --stderr-file, --start-timeout."""
    nb = notebook(ws.root / "in.ipynb", "print(repr(a), repr(b), repr(PAPERMILL_INPUT_PATH))",
                  "import sys; print('to stderr', file=sys.stderr)",
                  parameters="a = 0\nb = ''\nPAPERMILL_INPUT_PATH = ''")
    papermill(ws.root, nb.name, "out.ipynb", "-y", "a: 2.5", "-r", "b", "7", "--report-mode",
              "--inject-paths", "--stdout-file", "so.txt", "--stderr-file", "se.txt",
              "--start-timeout", "90")
    out = load(ws.root / "out.ipynb")
    assert stdout_of(out, 2).strip() == "2.5 '7' 'in.ipynb'"
    assert (ws.root / "so.txt").read_text().strip() == "2.5 '7' 'in.ipynb'"
    assert "to stderr" in (ws.root / "se.txt").read_text()
    assert all(c["metadata"].get("jupyter", {}).get("source_hidden")  # report mode
               for c in out["cells"] if c["cell_type"] == "code")
    ext = statement(out)["predicate"]["buildDefinition"]["externalParameters"]
    assert json.loads(ext["parameters"])["a"] == 2.5
    assert json.loads(ext["parameters"])["b"] == "7"
    assert verify(ws, ws.root / "out.ipynb").verified


def test_prepare_only_runs_nothing_and_signs_nothing(ws: Workspace) -> None:
    """papermill does not call the engine: no run, no record, no signature to pass for one."""
    nb = notebook(ws.root / "in.ipynb", "print(1)")
    papermill(ws.root, nb.name, "out.ipynb", "--prepare-only")
    out = load(ws.root / "out.ipynb")
    assert "securenb" not in out["metadata"]
    assert ws.store.list_runs() == []
    assert not verify(ws, ws.root / "out.ipynb").verified
