"""What a run records, and what tampering with it shows: `securenb run` and `securenb verify`.

Parameters of every JSON type round-trip exactly; every edit of a cell, an output, the
parameters or the embedded provenance is detected and named; a killed run leaves no
signed output; secrets reach the kernel but no record.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from runs_support import BIN, byproduct, load, notebook, run, statement, stdout_of, verify

from securenb.core.workspace import Workspace
from securenb.signing.notebook import sign_notebook

PARAMS: dict[str, Any] = {
    "i": 3, "neg": -7, "big": 2**53 - 1, "zero_float": 0.0, "one_float": 1.0, "tenth": 0.1,
    "tiny": 1.5e-300, "t": True, "f": False, "none": None, "s": "héllo \"quoted\"\nline",
    "empty_s": "", "nested": {"a": [1, 2.5, {"b": None}], "c": {}}, "empty_l": [],
}
NAMES = sorted(PARAMS)
SHOW = ("import json\nprint(json.dumps({k: [type(globals()[k]).__name__, globals()[k]]"
        f" for k in {NAMES!r}}}, sort_keys=True))")


@pytest.fixture
def ws(workspace: Any) -> Workspace:
    # pytest makes tmp_path 0700; the sandbox's user must be able to enter the project
    workspace.root.chmod(0o755)
    return workspace  # type: ignore[no-any-return]


def securenb_run(ws: Workspace, *args: str, check: bool = True, **kw: Any) -> Any:
    return run("securenb", "run", "--no-progress-bar", *args, cwd=ws.root, check=check, **kw)


def kinds(value: Any) -> Any:
    """What the kernel printed for a value: [type name, value]."""
    return [type(value).__name__, value]


def test_parameters_of_every_json_type_round_trip_exactly(ws: Workspace) -> None:
    nb = notebook(ws.root / "in.ipynb", SHOW, parameters="\n".join(f"{k} = None" for k in PARAMS))
    (ws.root / "p.json").write_text(json.dumps(PARAMS))  # JSON is YAML: -f reads it
    proc = securenb_run(ws, nb.name, "out.ipynb", "-f", "p.json", "--json")
    assert json.loads(proc.stdout)["status"] == "completed"
    out = load(ws.root / "out.ipynb")
    from securenb.runs.params import from_text, same

    recorded = from_text(statement(out)["predicate"]["buildDefinition"]["externalParameters"]
                         ["parameters"])
    assert same(recorded, PARAMS), recorded  # 1.0 stays a float, 2**53 - 1 an exact int
    assert same(out["metadata"]["papermill"]["parameters"], PARAMS)
    printed = json.loads(stdout_of(out, 2))
    assert printed == {k: kinds(v) for k, v in PARAMS.items()}
    assert verify(ws, ws.root / "out.ipynb").verified


def test_p_values_are_typed_as_papermill_types_them(ws: Workspace) -> None:
    nb = notebook(ws.root / "in.ipynb", "print(repr(a), repr(b), repr(c), repr(d), repr(e))",
                  parameters="a = b = c = d = e = 0")
    securenb_run(ws, nb.name, "out.ipynb", "-p", "a", "1", "-p", "b", "1.0", "-p", "c", "True",
                 "-p", "d", "None", "-r", "e", "1")
    out = load(ws.root / "out.ipynb")
    assert stdout_of(out, 2).strip() == "1 1.0 True None '1'"


@pytest.mark.parametrize(("value", "error"), [
    ("nan", "error: parameter x: nan is not a JSON number"),
    (str(2**60), f"error: parameter x: {2**60} is past 2**53, the largest integer a signed "
                 "notebook (RFC 8785 JSON) holds exactly; pass it as a string (-r)"),
])
def test_parameters_json_cannot_hold_exactly_are_refused_before_anything_runs(
        ws: Workspace, value: str, error: str) -> None:
    nb = notebook(ws.root / "in.ipynb", "print(x)", parameters="x = 0")
    proc = securenb_run(ws, nb.name, "out.ipynb", "-p", "x", value, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip() == error
    assert not (ws.root / "out.ipynb").exists()
    assert not list(ws.root.glob(".out.ipynb.*"))


def test_wrong_passphrase_stops_the_run_before_any_cell_and_keeps_the_old_output(
        ws: Workspace) -> None:
    out = _run_once(ws)
    before = out.read_bytes()
    marker = ws.root / "outputs" / "ran"  # the sandbox's writable folder
    nb = notebook(ws.root / "in.ipynb", "open('outputs/ran', 'w').write('x')")
    proc = securenb_run(ws, nb.name, "out.ipynb", check=False,
                        env={"SECURENB_KEY_PASSPHRASE": "wrong passphrase"})
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and len(proc.stderr.strip().splitlines()) == 1
    assert not marker.exists()
    assert out.read_bytes() == before and not list(ws.root.glob(".out.ipynb.*"))


def test_failed_run_exits_1_and_is_signed_as_failed(ws: Workspace) -> None:
    nb = notebook(ws.root / "in.ipynb", "1 / 0")
    proc = securenb_run(ws, nb.name, "out.ipynb", "--json", check=False)
    assert proc.returncode == 1
    data = json.loads(proc.stdout)
    assert data["status"] == "failed" and data["error"].startswith("cell #1: ZeroDivisionError")
    out = load(ws.root / "out.ipynb")
    assert byproduct(out, "result")["exitCode"] == 1
    assert ws.store.get_run(data["run_id"]).status == "failed"
    assert [r.id for r in ws.store.list_runs()] == [data["run_id"]]  # one run, one record
    from securenb.signing import service

    checked = verify(ws, ws.root / "out.ipynb")
    assert not checked.verified and checked.problems == (
        "run failed (exit 1); --allow-failed checks its record",)
    assert service.verify(ws, ws.root / "out.ipynb", allow_failed=True).verified


# -- tampering --------------------------------------------------------------------------

def _run_once(ws: Workspace) -> Path:
    nb = notebook(ws.root / "in.ipynb", "print(lr * 2)", "print('second')", parameters="lr = 1")
    securenb_run(ws, nb.name, "out.ipynb", "-p", "lr", "0.5")
    return ws.root / "out.ipynb"


def _edit(path: Path, change: Any) -> None:
    nb = load(path)
    change(nb)
    path.write_text(json.dumps(nb))


def _code(nb: dict[str, Any], index: int) -> dict[str, Any]:
    return [c for c in nb["cells"] if c["cell_type"] == "code"][index]  # type: ignore[no-any-return]


def _set_output(nb: dict[str, Any]) -> None:
    _code(nb, 2)["outputs"][0]["text"] = "2.0\n"


def _set_source(nb: dict[str, Any]) -> None:
    _code(nb, 3)["source"] = "print('other')"


def _set_param_type(nb: dict[str, Any]) -> None:
    nb["metadata"]["papermill"]["parameters"]["lr"] = 0.25


def _add_cell(nb: dict[str, Any]) -> None:
    nb["cells"].append({"cell_type": "code", "id": "added", "metadata": {}, "outputs": [],
                        "source": "print('x')", "execution_count": None})


def _remove_cell(nb: dict[str, Any]) -> None:
    del nb["cells"][-1]


def _edit_provenance(nb: dict[str, Any]) -> None:
    envelope = nb["metadata"]["securenb"]["provenance"]
    st = json.loads(base64.b64decode(envelope["payload"]))
    st["predicate"]["buildDefinition"]["externalParameters"]["parameters"] = '{"lr": 0.25}'
    envelope["payload"] = base64.b64encode(json.dumps(st).encode()).decode()


@pytest.mark.parametrize(("change", "named"), [
    (_set_output, ["cell #3", "outputs changed since the run"]),
    (_set_source, ["cell #4", "source changed since the run"]),
    (_set_param_type, ["parameter 'lr': the run had 0.5, metadata.papermill shows 0.25"]),
    (_add_cell, ["id added", "added after the run"]),
    (_remove_cell, ["of the run removed"]),
    (_edit_provenance, ["embedded provenance"]),
])
def test_every_edit_is_detected_and_named(ws: Workspace, change: Any, named: list[str]) -> None:
    out = _run_once(ws)
    assert verify(ws, out).verified
    _edit(out, change)
    result = verify(ws, out)
    assert not result.verified
    text = "\n".join(result.problems)
    for part in named:
        assert part in text, text


def test_an_int_turned_float_is_detected_though_rfc8785_cannot_see_it(ws: Workspace) -> None:
    nb = notebook(ws.root / "in.ipynb", "print(n)", parameters="n = 0")
    securenb_run(ws, nb.name, "out.ipynb", "-p", "n", "1")
    out = ws.root / "out.ipynb"
    _edit(out, lambda nb: nb["metadata"]["papermill"]["parameters"].update(n=1.0))
    result = verify(ws, out)
    assert not result.verified
    assert "parameter 'n': the run had 1, metadata.papermill shows 1.0" in result.problems


def test_edited_then_re_signed_output_is_still_named_by_the_provenance(ws: Workspace) -> None:
    """Whoever holds the release key re-signs an edited output: the record key's
    provenance still names the cell."""
    out = _run_once(ws)
    _edit(out, _set_output)
    from securenb.signing.service import signing_key

    sign_notebook(out, signing_key(ws, None), "executed")
    result = verify(ws, out)
    assert not result.verified
    assert any("cell #3" in p and "outputs changed since the run" in p for p in result.problems)


def test_provenance_of_another_run_does_not_fit(ws: Workspace) -> None:
    out = _run_once(ws)
    nb2 = notebook(ws.root / "other.ipynb", "print('other run')")
    securenb_run(ws, nb2.name, "other-out.ipynb")
    other = load(ws.root / "other-out.ipynb")["metadata"]["securenb"]["provenance"]
    _edit(out, lambda nb: nb["metadata"]["securenb"].update(provenance=other))
    result = verify(ws, out)
    assert not result.verified
    assert any("since the run" in p or "removed" in p for p in result.problems)


# -- killed runs --------------------------------------------------------------------------

def _start_slow_run(ws: Workspace) -> subprocess.Popen[str]:
    nb = notebook(ws.root / "in.ipynb", "print('started', flush=True)",
                  "import time\ntime.sleep(120)")
    return subprocess.Popen([str(BIN / "securenb"), "run", "--no-progress-bar", nb.name,
                             "out.ipynb"], cwd=ws.root, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_for_first_cell(ws: Workspace, proc: subprocess.Popen[str], runs_before: int) -> None:
    """Until the new run has audited its first cell (so the second one is running)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        entries = [r.entry for r in ws.audit_log.read()]
        starts = [e.subject.removeprefix("run:") for e in entries if e.action == "run.start"]
        if len(starts) > runs_before and any(
                e.action == "run.cell" and e.details["run"] == starts[-1] for e in entries):
            return
        time.sleep(0.2)
    raise AssertionError("the run never finished its first cell")


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM])
def test_killed_run_leaves_no_signed_output(ws: Workspace, signum: int) -> None:
    stale = _run_once(ws)  # an earlier, valid output at the same path
    assert verify(ws, stale).verified
    proc = _start_slow_run(ws)
    try:
        _wait_for_first_cell(ws, proc, runs_before=1)
        assert not stale.exists()  # the stale output cannot pass for this run
        proc.send_signal(signum)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0
    assert not (ws.root / "out.ipynb").exists()
    leftovers = [p for p in ws.root.glob(".out.ipynb.*/out.ipynb")]
    for partial in leftovers:  # after SIGKILL: the notebook in progress, never signed
        try:
            data = load(partial)
        except ValueError:
            continue  # killed while papermill saved it: not even JSON
        assert "signature" not in data["metadata"].get("securenb", {})
        assert not verify(ws, partial).verified
    actions = [r.entry for r in ws.audit_log.read() if r.entry.action == "run.finish"]
    if signum == signal.SIGTERM:
        assert not leftovers
        assert actions[-1].details["status"] == "killed"


# -- secrets ------------------------------------------------------------------------------

def test_secret_reaches_the_kernel_but_no_record(ws: Workspace) -> None:
    value = "s3cr3t-token-value-42"
    nb = notebook(ws.root / "in.ipynb", "import os\nprint(os.environ['API_TOKEN'])\n"
                  "print(len(os.environ['API_TOKEN']))")
    securenb_run(ws, nb.name, "out.ipynb", "--secret", "API_TOKEN", "--log-output",
                 env={"API_TOKEN": value})
    out_text = (ws.root / "out.ipynb").read_text()
    assert value not in out_text
    assert stdout_of(load(ws.root / "out.ipynb"), 0).split() == ["[REDACTED:API_TOKEN]",
                                                                  str(len(value))]
    ext = statement(load(ws.root / "out.ipynb"))["predicate"]["buildDefinition"]
    assert ext["externalParameters"]["secrets"] == ["API_TOKEN"]
    for path in ws.dir.rglob("*"):
        if path.is_file():
            assert value.encode() not in path.read_bytes(), path
    assert verify(ws, ws.root / "out.ipynb").verified


def test_output_from_another_workspace_has_no_audit_entries(ws: Workspace, tmp_path: Path,
                                                            passphrase: str) -> None:
    out = _run_once(ws)
    other_root = tmp_path / "elsewhere"
    other_root.mkdir()
    other = Workspace.init(other_root, passphrase)
    from securenb.runs.verify import check_run

    check = check_run(out, [ws.public_key()], other)
    assert check is not None
    assert any("no entries for run" in p for p in check.problems)


def test_artifacts_are_hashed_after_the_kernel_stopped(ws: Workspace) -> None:
    """A thread the notebook left running keeps writing: the record must match the file."""
    nb = notebook(ws.root / "in.ipynb",
                  "import threading, time\n"
                  "def scribble():\n"
                  "    for i in range(400):\n"
                  "        with open('outputs/late.txt', 'w') as f:\n"
                  "            f.write(str(i))\n"
                  "        time.sleep(0.05)\n"
                  "threading.Thread(target=scribble, daemon=True).start()\n"
                  "time.sleep(0.3)")
    securenb_run(ws, nb.name, "out.ipynb")
    time.sleep(0.5)  # had the kernel survived the run, it would write again by now
    from securenb.core.store import file_sha256

    subjects = {s["name"]: s["digest"]["sha256"]
                for s in statement(load(ws.root / "out.ipynb"))["subject"]}
    assert subjects["outputs/late.txt"] == file_sha256(ws.root / "outputs" / "late.txt")[0]


def test_offline_check_needs_only_the_notebook_and_the_record_key(ws: Workspace,
                                                                   tmp_path: Path) -> None:
    """A recipient without the workspace: the provenance checks against a pinned record key."""
    out = _run_once(ws)
    copy = tmp_path / "received" / "out.ipynb"
    copy.parent.mkdir()
    copy.write_bytes(out.read_bytes())
    from securenb.runs.verify import check_run

    check = check_run(copy, [ws.public_key()], None)
    assert check is not None and check.problems == [] and check.status == "completed"
    unknown = check_run(copy, [], None)
    assert unknown is not None
    assert unknown.problems[0].startswith("embedded provenance: ")
    _edit(copy, _set_output)
    edited = check_run(copy, [ws.public_key()], None)
    assert edited is not None
    assert any("cell #3" in p and "outputs changed" in p for p in edited.problems)


def test_isolation_option_unsafe_local_is_recorded(ws: Workspace) -> None:
    nb = notebook(ws.root / "in.ipynb", "import os\nprint(os.environ.get('SECURENB_SANDBOX'))")
    securenb_run(ws, nb.name, "out.ipynb", "--isolation", "unsafe-local")
    st = statement(load(ws.root / "out.ipynb"))
    definition = st["predicate"]["buildDefinition"]
    assert definition["externalParameters"]["isolation"] == "unsafe-local"
    assert definition["internalParameters"]["unsafe"] is True
    assert definition["internalParameters"]["unsafeRequested"] is True
    assert any("UNSAFE: no isolation" in n for n in verify(ws, ws.root / "out.ipynb").notes)
    start = [r.entry for r in ws.audit_log.read() if r.entry.action == "run.start"][-1]
    assert start.details["unsafe"] is True


def test_gpus_beyond_the_machine_are_a_one_line_error(ws: Workspace) -> None:
    if list(Path("/dev").glob("nvidia[0-9]*")):
        pytest.skip("this machine has NVIDIA GPUs")
    nb = notebook(ws.root / "in.ipynb", "print(1)")
    proc = securenb_run(ws, nb.name, "out.ipynb", "--gpus", "1", check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("error: --gpus 1: found 0 NVIDIA GPU device(s) in /dev; "
                                   "install the NVIDIA driver or ask for fewer GPUs")
    assert not (ws.root / "out.ipynb").exists() and not list(ws.root.glob(".out.ipynb.*"))


def test_output_inside_the_sandbox_writable_folder_is_refused(ws: Workspace) -> None:
    """The kernel could replace the notebook in progress there by a link to a host file."""
    nb = notebook(ws.root / "in.ipynb", "print(1)")
    (ws.root / "outputs").mkdir(exist_ok=True)
    proc = securenb_run(ws, nb.name, "outputs/out.ipynb", check=False)
    assert proc.returncode == 2
    assert "inside the sandbox's writable folder" in proc.stderr
    assert not list((ws.root / "outputs").iterdir())


def test_links_and_fifos_the_sandbox_writes_are_never_followed(ws: Workspace) -> None:
    nb = notebook(ws.root / "in.ipynb",
                  "import os\nos.symlink('/etc/hostname', 'outputs/link')\n"
                  "os.mkfifo('outputs/pipe')\nopen('outputs/real.txt', 'w').write('x')")
    securenb_run(ws, nb.name, "out.ipynb", timeout=120)
    out = load(ws.root / "out.ipynb")
    names = {s["name"] for s in statement(out)["subject"]}
    assert "outputs/real.txt" in names
    assert not {"outputs/link", "outputs/pipe"} & names
    skipped = {b["name"]: b["annotations"]["skipped"]
               for b in statement(out)["predicate"]["runDetails"]["byproducts"]
               if "skipped" in b.get("annotations", {})}
    # the sandbox's outbox never copies them out; were one there, it is only named
    assert set(skipped) <= {"outputs/link", "outputs/pipe"}
    assert not (ws.root / "outputs" / "link").is_symlink()
    assert {a.path for a in ws.store.list_artifacts()} & {"outputs/link", "outputs/pipe"} == set()


def test_verify_through_the_agent_fails_a_failed_run_unless_allowed(
        ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`securenb verify` with no passphrase asks the workspace's agent: same verdict."""
    from securenb.signing.remote import agent_socket

    runtime = tempfile.mkdtemp(prefix="snb-")  # a socket path has 108 bytes at most
    monkeypatch.setenv("XDG_RUNTIME_DIR", runtime)
    nb = notebook(ws.root / "in.ipynb", "raise SystemExit(3)")
    assert run("securenb", "run", "--no-progress-bar", nb.name, "out.ipynb",
               cwd=ws.root).returncode == 1
    env = {k: v for k, v in os.environ.items() if "PASSPHRASE" not in k}
    agent = subprocess.Popen([str(BIN / "securenb"), "-C", str(ws.root), "agent", "start",
                              "--passphrase-fd", "0"], stdin=subprocess.PIPE, env=env)
    try:
        assert agent.stdin is not None
        agent.stdin.write(os.environ["SECURENB_KEY_PASSPHRASE"].encode() + b"\n")
        agent.stdin.close()
        for _ in range(1200):
            if agent_socket(ws.root).is_socket() or agent.poll() is not None:
                break
            time.sleep(0.05)
        assert agent_socket(ws.root).is_socket(), "the agent did not start"
        verify_cli = [str(BIN / "securenb"), "verify", "--json", "out.ipynb"]
        failed = subprocess.run(verify_cli, cwd=ws.root, env=env, capture_output=True,
                                text=True, check=False)
        report = json.loads(failed.stdout)
        assert failed.returncode == 1 and report["run"]["status"] == "failed", failed.stdout
        assert report["problems"][0].startswith("run failed (exit 1)")
        allowed = subprocess.run([*verify_cli, "--allow-failed"], cwd=ws.root, env=env,
                                 capture_output=True, text=True, check=False)
        assert allowed.returncode == 0, allowed.stdout + allowed.stderr
        assert json.loads(allowed.stdout)["run"]["exit_code"] == 1
    finally:
        agent.terminate()
        agent.wait(timeout=30)
        shutil.rmtree(runtime, ignore_errors=True)
