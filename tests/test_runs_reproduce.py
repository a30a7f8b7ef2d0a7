"""`securenb reproduce`: re-run with the recorded parameters, inputs and environment."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from runs_support import example, load, notebook, run, statement, stdout_of

from securenb.core.workspace import Workspace


@pytest.fixture
def ws(workspace: Any) -> Workspace:
    # pytest makes tmp_path 0700; the sandbox's user must be able to enter the project
    workspace.root.chmod(0o755)
    return workspace  # type: ignore[no-any-return]


def securenb(ws: Workspace, *args: str, check: bool = True) -> Any:
    return run("securenb", *args, cwd=ws.root, check=check)


def test_example_run_reproduces_bit_for_bit(ws: Workspace) -> None:
    nb = example(ws.root)
    securenb(ws, "run", "--no-progress-bar", nb.name, "out.ipynb", "-p", "lr", "0.2",
             "-p", "epochs", "30")
    proc = securenb(ws, "reproduce", "--no-progress-bar", "out.ipynb", "--json")
    report = json.loads(proc.stdout)
    assert report["verdict"] == "reproduced" and report["reasons"] == []
    assert all(c["outputs"] == "identical" for c in report["cells"])
    assert {a["name"]: a["status"] for a in report["artifacts"]} == {
        "outputs/model.npy": "identical", "outputs/metrics.json": "identical"}
    again = load(ws.root / "out.reproduced.ipynb")
    ext = statement(again)["predicate"]["buildDefinition"]["externalParameters"]
    assert json.loads(ext["parameters"]) == {"lr": 0.2, "epochs": 30}


def test_nondeterministic_cell_and_artifact_are_named(ws: Workspace) -> None:
    nb = notebook(ws.root / "in.ipynb", "print('same')",
                  "import os\nprint(os.urandom(8).hex())\n"
                  "open('outputs/random.bin', 'wb').write(os.urandom(16))")
    securenb(ws, "run", "--no-progress-bar", nb.name, "out.ipynb")
    proc = securenb(ws, "reproduce", "--no-progress-bar", "out.ipynb", check=False)
    assert proc.returncode == 1
    assert proc.stdout.splitlines()[0].startswith("DIFFERS: out.ipynb")
    assert "cells: 1/2 bit-identical" in proc.stdout
    assert 'cell #2: {"id": ' in proc.stdout and '"outputs": "differs"' in proc.stdout
    assert "artifact outputs/random.bin: differs" in proc.stdout


def test_changed_or_missing_input_is_why_it_cannot_reproduce(ws: Workspace) -> None:
    (ws.root / "data.csv").write_text("1,2\n")
    nb = notebook(ws.root / "in.ipynb", "print(open(path).read())", parameters="path = ''")
    securenb(ws, "run", "--no-progress-bar", nb.name, "out.ipynb", "-p", "path", "data.csv")
    deps = statement(load(ws.root / "out.ipynb"))["predicate"]["buildDefinition"][
        "resolvedDependencies"]
    assert any(d["name"] == "parameter:path" for d in deps)  # an input named by a parameter
    (ws.root / "data.csv").write_text("3,4\n")
    proc = securenb(ws, "reproduce", "--no-progress-bar", "out.ipynb", "--json", check=False)
    report = json.loads(proc.stdout)
    assert proc.returncode == 1 and report["verdict"] == "could not reproduce"
    assert report["reasons"] == [f"input {ws.root / 'data.csv'} (parameter:path) changed since "
                                 "the run"]
    assert not (ws.root / "out.reproduced.ipynb").exists()
    (ws.root / "in.ipynb").unlink()
    report = json.loads(securenb(ws, "reproduce", "out.ipynb", "--json", check=False).stdout)
    assert f"input notebook {ws.root / 'in.ipynb'} is missing" in report["reasons"]


def test_edited_output_is_not_reproduced(ws: Workspace) -> None:
    nb = notebook(ws.root / "in.ipynb", "print(1)")
    securenb(ws, "run", "--no-progress-bar", nb.name, "out.ipynb")
    data = load(ws.root / "out.ipynb")
    next(c for c in data["cells"] if c["cell_type"] == "code")["outputs"][0]["text"] = "2\n"
    (ws.root / "out.ipynb").write_text(json.dumps(data))
    report = json.loads(securenb(ws, "reproduce", "out.ipynb", "--json", check=False).stdout)
    assert report["verdict"] == "could not reproduce"
    assert any("does not verify" in r and "outputs changed since the run" in r
               for r in report["reasons"])


def test_different_environment_digest_is_reported(ws: Workspace) -> None:
    from securenb.runs.reproduce import _environment_changes

    nb = notebook(ws.root / "in.ipynb", "print(1)")
    securenb(ws, "run", "--no-progress-bar", nb.name, "out.ipynb")
    definition = statement(load(ws.root / "out.ipynb"))["predicate"]["buildDefinition"]
    assert _environment_changes(definition, Path(ws.root)) == []
    env = next(d for d in definition["resolvedDependencies"] if d["name"] == "environment")
    env["digest"]["sha256"] = "0" * 64  # as if the run had other packages
    reasons = _environment_changes(definition, Path(ws.root))
    assert len(reasons) == 1 and reasons[0].startswith("different environment: python-env:")


def test_unsafe_local_record_reproduces_without_a_sandbox_only_when_named(
        ws: Workspace) -> None:
    nb = notebook(ws.root / "in.ipynb", "print(1)")
    securenb(ws, "run", "--no-progress-bar", nb.name, "out.ipynb", "--isolation", "unsafe-local")
    refused = securenb(ws, "reproduce", "--no-progress-bar", "out.ipynb", check=False)
    assert refused.returncode == 2 and refused.stderr.startswith("error: the run had no sandbox")
    assert len(refused.stderr.strip().splitlines()) == 1
    assert not (ws.root / "out.reproduced.ipynb").exists()
    securenb(ws, "reproduce", "--no-progress-bar", "out.ipynb", "--isolation", "unsafe-local")
    st = statement(load(ws.root / "out.reproduced.ipynb"))
    assert st["predicate"]["buildDefinition"]["internalParameters"]["unsafeRequested"] is True


def test_recorded_secret_names_are_not_resolved_again_unless_given(ws: Workspace) -> None:
    """A record naming TOKEN would otherwise hand the reproducer's $TOKEN to its notebook."""
    nb = notebook(ws.root / "in.ipynb", "import os\nprint(len(os.environ.get('TOKEN', '')))")
    env = {"TOKEN": "s3cr3t-value"}
    run("securenb", "run", "--no-progress-bar", nb.name, "out.ipynb", "--secret", "TOKEN",
        cwd=ws.root, env=env, check=True)
    proc = run("securenb", "reproduce", "--no-progress-bar", "out.ipynb", "--json",
               cwd=ws.root, env=env)
    report = json.loads(proc.stdout)
    assert proc.returncode == 1 and report["verdict"] == "could not reproduce"
    assert any("secret(s) TOKEN" in r and "--secret" in r for r in report["reasons"])
    assert not (ws.root / "out.reproduced.ipynb").exists()
    run("securenb", "reproduce", "--no-progress-bar", "out.ipynb", "--force", cwd=ws.root,
        env=env)
    assert stdout_of(load(ws.root / "out.reproduced.ipynb"), 0).strip() == "0"
    proc = run("securenb", "reproduce", "--no-progress-bar", "out.ipynb", "--secret", "TOKEN",
               "--json", cwd=ws.root, env=env)
    assert json.loads(proc.stdout)["verdict"] == "reproduced", proc.stdout


def test_recorded_gpus_sandbox_and_outside_paths_are_not_taken_from_the_record(
        ws: Workspace) -> None:
    from securenb.errors import SecurenbError
    from securenb.runs.reproduce import Settings, _inside, _missing_inputs, _setting_changes

    ext = {"isolation": "podman", "gpus": "all", "secrets": []}
    reasons = _setting_changes(ws, ext, Settings(), "bwrap")
    assert any("--isolation podman" in r for r in reasons)
    assert any("--gpus all" in r for r in reasons)
    assert _setting_changes(ws, ext, Settings("podman", "all"), "podman") == []
    for outside in ("/etc", "../elsewhere", "sub/../../x"):
        with pytest.raises(SecurenbError, match="outside the project"):
            _inside(ws, outside, "run folder")
    nb = notebook(ws.root / "in.ipynb", "print(1)")
    dep = {"name": "parameter:path", "uri": "file:///etc/passwd",
           "digest": {"sha256": "0" * 64}}
    from securenb.core.store import file_sha256

    reasons = _missing_inputs(ws, nb, file_sha256(nb)[0], [dep], ws.root)
    assert reasons == ["input /etc/passwd (parameter:path) is outside the project"]


@pytest.mark.parametrize("folder", [".", "", "../up", "/tmp"])
def test_the_kernels_writable_folder_is_never_the_project_itself(ws: Workspace,
                                                                 folder: str) -> None:
    """A record's outputDir is checked as a typed --output-dir is: `.` would make the whole
    run folder (the project) writable by the notebook."""
    from securenb.errors import SecurenbError
    from securenb.runs.kernel import check_output_dir

    with pytest.raises(SecurenbError, match="a folder inside the run's folder"):
        check_output_dir(folder)
    nb = notebook(ws.root / "in.ipynb", "print(1)")
    proc = securenb(ws, "run", "--no-progress-bar", nb.name, "out.ipynb", "--output-dir",
                    folder, check=False)
    assert proc.returncode == 2 and proc.stderr.startswith("error: --output-dir"), proc.stderr
    assert not (ws.root / "out.ipynb").exists()
