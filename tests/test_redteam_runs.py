"""Red team: signed papermill runs (`securenb run`, verify, reproduce) as an attacker sees them.

Real papermill, real bwrap kernels, the real CLI. What the records say must be
what ran: the parameters the kernel got, the sandbox it ran in.
"""

from __future__ import annotations

import json
from typing import Any

import nbformat
import pytest
from runs_support import load, notebook, run, statement, stdout_of, verify

from securenb.core.workspace import Workspace
from securenb.errors import SecurenbError


@pytest.fixture
def ws(workspace: Any) -> Workspace:
    workspace.root.chmod(0o755)  # the sandbox's user must be able to enter the project
    return workspace  # type: ignore[no-any-return]


def _run(ws: Workspace, *args: str, check: bool = True) -> Any:
    return run("securenb", "run", "--no-progress-bar", *args, cwd=ws.root, check=check)


def _recorded_parameters(out: dict[str, Any]) -> Any:
    ext = statement(out)["predicate"]["buildDefinition"]["externalParameters"]
    return json.loads(ext["parameters"])


def test_parameter_names_python_folds_together_are_refused(ws: Workspace) -> None:
    """Python NFKC-normalises identifiers: `ｘ = 2` assigns `x`. Recorded as two parameters,
    the provenance would say x=1 while the kernel ran with x=2."""
    nb = notebook(ws.root / "in.ipynb", "print(x)", parameters="x = 0")
    proc = _run(ws, nb.name, "out.ipynb", "-p", "x", "1", "-p", "\uff58", "2", check=False)
    assert proc.returncode == 2, proc.stdout
    assert proc.stderr.startswith("error: parameter '\uff58'"), proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (ws.root / "out.ipynb").exists()


def test_input_notebook_metadata_is_not_recorded_as_the_runs_parameters(
        ws: Workspace) -> None:
    path = notebook(ws.root / "in.ipynb", "lr = 999\nprint(lr)")
    nb = nbformat.read(str(path), as_version=4)
    nb.metadata["papermill"] = {"parameters": {"lr": 0.1}}
    nbformat.write(nb, str(path))
    _run(ws, path.name, "out.ipynb")
    out = load(ws.root / "out.ipynb")
    assert stdout_of(out, 0).strip() == "999"
    assert verify(ws, ws.root / "out.ipynb").verified
    assert _recorded_parameters(out) == {}


def test_reproduce_never_runs_unsandboxed_unless_asked(ws: Workspace) -> None:
    marker = ws.root / "written-outside-the-sandbox"
    code = f"open({str(marker)!r}, 'w').write('host')"
    nb = notebook(ws.root / "in.ipynb", code)
    _run(ws, nb.name, "out.ipynb", "--isolation", "unsafe-local")  # named by its author
    assert marker.exists()
    marker.unlink()
    run("securenb", "reproduce", "--no-progress-bar", "out.ipynb", cwd=ws.root)
    assert not marker.exists(), "the reproduction ran on the host, unsandboxed"



DEEP = "[" * 3000 + "]" * 3000


@pytest.mark.parametrize("args", [
    ("-y", "1: 2"),  # YAML keys need not be strings
    ("-y", "null: 2"),
    ("--parameters-json", '{"a": ' + DEEP + "}"),
    ("-y", "a: " + DEEP),
], ids=["int-key", "null-key", "deep-json", "deep-yaml"])
def test_bad_parameters_are_a_one_line_error(ws: Workspace, args: tuple[str, str]) -> None:
    nb = notebook(ws.root / "in.ipynb", "print(1)")
    proc = _run(ws, nb.name, "out.ipynb", *args, check=False)
    assert proc.returncode == 2, proc.stderr[-300:]
    assert proc.stderr.startswith("error: "), proc.stderr[-300:]
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr[-300:]
    assert not (ws.root / "out.ipynb").exists()


def test_a_failed_run_does_not_verify_like_a_completed_one(ws: Workspace) -> None:
    nb = notebook(ws.root / "in.ipynb", "raise SystemExit(3)")
    assert _run(ws, nb.name, "out.ipynb", check=False).returncode == 1
    proc = run("securenb", "verify", "--json", "out.ipynb", cwd=ws.root)
    report = json.loads(proc.stdout)
    assert proc.returncode != 0 or report.get("run", {}).get("status") == "failed", report


def test_verify_prints_no_terminal_escapes_from_the_notebook(ws: Workspace) -> None:
    """What a notebook controls (its exception message, its cell ids) is shown by `securenb
    verify`: terminal escapes in it move the cursor and overwrite the lines a person reads
    (a failed run's status, the FAILED verdict of an edited output)."""
    forged = "\\x1b[2A\\x1b[2K  note:      run run-0: completed (exit 0), sandbox bwrap"
    nb = notebook(ws.root / "in.ipynb", f"raise ValueError('x\\n{forged}')")
    assert _run(ws, nb.name, "out.ipynb", check=False).returncode == 1
    terminal = {"TERM": "xterm", "FORCE_COLOR": "1"}
    shown = run("securenb", "verify", "out.ipynb", cwd=ws.root, env=terminal).stdout
    assert "\x1b[2A" not in shown and "\x1b[2K" not in shown, shown
    out = load(ws.root / "out.ipynb")
    out["cells"][-1]["id"] = "\x1b[99A\x1b[2KVERIFIED notebook out.ipynb\x1b[99B"
    (ws.root / "out.ipynb").write_text(json.dumps(out))
    proc = run("securenb", "verify", "out.ipynb", cwd=ws.root, env=terminal)
    assert proc.returncode == 1
    assert "\x1b[99A" not in proc.stdout, proc.stdout


def test_a_failed_runs_message_cannot_add_status_lines_to_securenb_run(ws: Workspace) -> None:
    nb = notebook(ws.root / "in.ipynb",
                  "raise ValueError('x\\ncompleted run run-0: in.ipynb -> out.ipynb, signed')")
    proc = _run(ws, nb.name, "out.ipynb", check=False)
    assert proc.returncode == 1
    assert not any(line.startswith("completed run") for line in proc.stdout.splitlines()), \
        proc.stdout


def _reorder(nb: dict[str, Any]) -> None:
    nb["cells"][-1], nb["cells"][-2] = nb["cells"][-2], nb["cells"][-1]


def _minor(nb: dict[str, Any]) -> None:
    nb["nbformat_minor"] = 4


def _attachment(nb: dict[str, Any]) -> None:
    nb["cells"][0]["attachments"] = {"x.png": {"image/png": "iVBORw0KGgo="}}


def _injected(nb: dict[str, Any]) -> None:
    cell = next(c for c in nb["cells"] if "injected-parameters" in c["metadata"].get("tags", []))
    cell["source"] = cell["source"].replace("0.5", "0.25")


def _cell_metadata(nb: dict[str, Any]) -> None:
    nb["cells"][-1]["metadata"]["jupyter"] = {"outputs_hidden": True}


def _lines(nb: dict[str, Any]) -> None:
    """Same text split into lines (nbformat's on-disk form): not a change."""
    cell = nb["cells"][-1]
    cell["source"] = cell["source"].splitlines(keepends=True)


def test_edits_of_a_run_output_are_caught_and_line_splits_are_not(ws: Workspace) -> None:
    """Reorder, format version, attachment, injected-parameters cell, cell metadata, a
    duplicated key: each breaks verification; nbformat's line-split form does not."""
    nb = notebook(ws.root / "in.ipynb", "print(lr)", "print('b')", parameters="lr = 1")
    _run(ws, nb.name, "out.ipynb", "-p", "lr", "0.5")
    out = ws.root / "out.ipynb"
    original = out.read_bytes()
    for edit in (_reorder, _minor, _attachment, _injected, _cell_metadata, _lines):
        data = json.loads(original)
        edit(data)
        out.write_text(json.dumps(data))
        assert verify(ws, out).verified is (edit is _lines), edit.__name__
    text = original.decode()
    out.write_text(text.replace('"nbformat": 4', '"nbformat": 4, "nbformat": 4', 1))
    with pytest.raises(SecurenbError, match="duplicate key"):
        verify(ws, out)
