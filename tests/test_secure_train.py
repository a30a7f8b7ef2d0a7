"""%%secure_train at the IPython level: data in and out, records, secrets, checkpoints.

One IPython shell with the magic registered serves the module; sandboxes are
real bwrap sandboxes (the warm one is reused across tests of a workspace).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from secure_train_support import provenance, train

from securenb.core.workspace import Workspace
from securenb.isolation.detect import check_bwrap
from securenb.kernel.train_magics import SecureTrainError

pytestmark = pytest.mark.skipif(not check_bwrap().available, reason=check_bwrap().detail)

SECRET = "s3cr3t-token-" + "x" * 12


@pytest.fixture
def ns(shell: InteractiveShell, workspace: Workspace) -> dict[str, Any]:
    shell.user_ns.clear()
    return shell.user_ns


def test_safe_data_in_and_out(shell: InteractiveShell, ns: dict[str, Any],
                              workspace: Workspace) -> None:
    ns.update(arr=np.arange(6.0).reshape(2, 3), df=pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}),
              t=torch.ones(3), sd={"w": torch.zeros(2, 2)}, cfg={"lr": 0.1, "epochs": 2})
    train(shell, "--inputs arr,df,t,sd,cfg --outputs out_arr,out_df,out_t,out_sd,out_cfg", """
import os
out_arr = arr * 2
out_df = df.assign(c=df.a + 1)
out_t = t + 1
out_sd = {k: v + 3 for k, v in sd.items()}
out_cfg = {**cfg, "in_sandbox": os.environ["SECURENB_SANDBOX"]}
""")
    assert np.array_equal(ns["out_arr"], np.arange(6.0).reshape(2, 3) * 2)
    assert list(ns["out_df"]["c"]) == [2, 3]
    assert torch.equal(ns["out_t"], torch.full((3,), 2.0))
    assert torch.equal(ns["out_sd"]["w"], torch.full((2, 2), 3.0))
    assert ns["out_cfg"] == {"lr": 0.1, "epochs": 2, "in_sandbox": "bwrap"}
    recorded = {a.path for a in workspace.store.list_artifacts()}
    assert "outputs/variables/out_arr.npy" in recorded
    assert "outputs/variables/out_df.parquet" in recorded
    deps = provenance(workspace)["predicate"]["buildDefinition"]["resolvedDependencies"]
    names = {d.get("name") for d in deps}
    assert {"cell", "arr", "df", "t", "sd", "cfg", "environment"} <= names


def test_unsafe_values_are_refused(shell: InteractiveShell, ns: dict[str, Any]) -> None:
    ns["obj"] = np.array([object()], dtype=object)
    with pytest.raises(UsageError, match="object arrays need pickle"):
        train(shell, "--inputs obj", "pass")
    ns["model"] = torch.nn.Linear(2, 2)
    with pytest.raises(UsageError, match="state_dict"):
        train(shell, "--inputs model", "pass")
    with pytest.raises(UsageError, match="neither a kernel variable nor an existing path"):
        train(shell, "--inputs nothing_here", "pass")


def test_file_inputs_are_read_only_mounts(shell: InteractiveShell, ns: dict[str, Any],
                                         workspace: Workspace) -> None:
    data = workspace.root / "data"
    data.mkdir()
    pd.DataFrame({"x": [1.0, 2.0]}).to_parquet(data / "train.parquet")
    train(shell, "--inputs data/train.parquet --outputs total", """
import pandas as pd
total = float(pd.read_parquet("data/train.parquet").x.sum())
try:
    open("data/train.parquet", "ab")
    writable = True
except OSError:
    writable = False
assert not writable
""")
    assert ns["total"] == 3.0
    deps = provenance(workspace)["predicate"]["buildDefinition"]["resolvedDependencies"]
    uris = [d["uri"] for d in deps]
    assert (data / "train.parquet").resolve().as_uri() in uris


def test_failing_cell_shows_its_error_and_is_recorded(shell: InteractiveShell,
                                                      ns: dict[str, Any],
                                                      workspace: Workspace) -> None:
    with pytest.raises(SecureTrainError) as info:
        train(shell, "", "raise ValueError('bad hyperparameter')")
    rendered = "\n".join(info.value._render_traceback_())
    assert "ValueError" in rendered and "bad hyperparameter" in rendered
    run = workspace.store.list_runs(limit=1)[0]
    assert run.status == "error" and run.provenance


def test_provenance_and_audit_record_every_run(shell: InteractiveShell, ns: dict[str, Any],
                                              workspace: Workspace) -> None:
    train(shell, "--memory 1g --timeout 600", "x = 1")
    statement = provenance(workspace)
    predicate = statement["predicate"]
    sandbox = predicate["buildDefinition"]["internalParameters"]["sandbox"]
    assert sandbox["backend"] == "bwrap" and sandbox["unsafe"] is False
    assert sandbox["limits"]["memory_bytes"] == 1 << 30
    assert sandbox["network"] == "none"
    assert predicate["runDetails"]["builder"]["id"].endswith("/bwrap")
    result = predicate["runDetails"]["byproducts"][0]["annotations"]
    assert result["status"] == "ok"
    entries = audit_entries(workspace, "secure_train.run")
    assert entries and entries[-1]["details"]["status"] == "ok"
    envelope = workspace.store.list_runs()[0].provenance
    assert entries[-1]["details"]["provenance"] == f"sha256:{envelope}"


def audit_entries(ws: Workspace, action: str) -> list[dict[str, Any]]:
    return [r.entry.to_json() for r in ws.audit_log.read() if r.entry.action == action]


def test_secrets_are_injected_redacted_and_never_recorded(
    shell: InteractiveShell, ns: dict[str, Any], workspace: Workspace,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TRAIN_TOKEN", SECRET)
    secret_file = workspace.root / "token.txt"
    secret_file.write_text(SECRET + "-file\n")
    train(shell, f"--secret TRAIN_TOKEN --secret OTHER=file:{secret_file} --outputs seen", """
import os, sys
print("token:", os.environ["TRAIN_TOKEN"])
print("split:", os.environ["TRAIN_TOKEN"][:5], end="", flush=True)
print(os.environ["TRAIN_TOKEN"][5:], flush=True)
print("other:", os.environ["OTHER"], file=sys.stderr)
seen = sorted(k for k in os.environ if k in ("TRAIN_TOKEN", "OTHER"))
""")
    out = capsys.readouterr()
    assert SECRET not in out.out + out.err
    assert "token: [REDACTED:TRAIN_TOKEN]" in out.out
    assert "[REDACTED:OTHER]" in out.err
    assert ns["seen"] == ["OTHER", "TRAIN_TOKEN"]
    for path in workspace.dir.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    options = provenance(workspace)["predicate"]["buildDefinition"]["externalParameters"]
    assert options["options"]["secrets"] == ["TRAIN_TOKEN", "OTHER"]


def test_secret_stays_out_of_the_launcher_command_line(shell: InteractiveShell,
                                                       ns: dict[str, Any],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAIN_TOKEN", SECRET)
    train(shell, "--secret TRAIN_TOKEN", "x = 1")
    magics = shell.magics_manager.registry["SecureTrainMagics"]
    for kernel in magics.trainer._pool.values():
        if kernel.provisioner.pid:
            cmdline = Path(f"/proc/{kernel.provisioner.pid}/cmdline").read_bytes()
            assert SECRET.encode() not in cmdline


def test_outputs_are_vetted_and_recorded(shell: InteractiveShell, ns: dict[str, Any],
                                         workspace: Workspace,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    train(shell, "", """
import os, pickle, pathlib, numpy as np
from securenb.sandbox import output_dir
out = output_dir()
np.save(out / "weights.npy", np.ones(3))
(out / "metrics.json").write_text('{"acc": 0.9}')
(out / "model.pkl").write_bytes(pickle.dumps({"a": 1}))
np.save(out / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
os.symlink("/etc/hostname", out / "link.txt")
os.mkfifo(out / "pipe.txt")
""")
    err = capsys.readouterr().err
    recorded = {a.path for a in workspace.store.list_artifacts()}
    assert {"outputs/weights.npy", "outputs/metrics.json"} <= recorded
    for bad in ("model.pkl", "objects.npy", "link.txt", "pipe.txt"):
        assert f"outputs/{bad}" not in recorded
        assert bad in err
    byproducts = provenance(workspace)["predicate"]["runDetails"]["byproducts"]
    assert {b["name"] for b in byproducts if "rejected" in b.get("annotations", {})} >= {
        "outputs/model.pkl", "outputs/objects.npy"}


def test_checkpoints_and_resume_from_newest_verified(shell: InteractiveShell,
                                                     ns: dict[str, Any],
                                                     workspace: Workspace) -> None:
    train(shell, "", """
import torch, securenb.sandbox as sb
model = torch.nn.Linear(2, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
for step in range(3):
    with torch.no_grad():
        model.weight.fill_(float(step))
    sb.checkpoint({"model": model.state_dict(), "opt": opt.state_dict(), "step": step}, step)
""")
    ckpts = sorted((workspace.root / "outputs" / "checkpoints").iterdir())
    assert [c.name for c in ckpts] == [f"step-{i:09d}" for i in range(3)]
    resume_cell = """
import securenb.sandbox as sb
ckpt = sb.restore()
resumed = (ckpt.step, float(ckpt.state["model"]["weight"][0, 0]), ckpt.state["step"])
"""
    train(shell, "--resume --outputs resumed", resume_cell)
    assert ns["resumed"] == [2, 2.0, 2]
    tampered = ckpts[2] / "state.safetensors"
    tampered.chmod(0o644)
    tampered.write_bytes(tampered.read_bytes()[:-1] + b"\0")
    train(shell, "--resume --outputs resumed", resume_cell)
    assert ns["resumed"] == [1, 1.0, 1]
    deps = provenance(workspace)["predicate"]["buildDefinition"]["resolvedDependencies"]
    assert any(d.get("name") == "resumed-checkpoint" and "step-000000001" in d["uri"]
               for d in deps)
    train(shell, "--outputs fresh", "import securenb.sandbox as sb\nfresh = sb.restore() is None")
    assert ns["fresh"] is True


def test_warm_sandbox_is_reused(shell: InteractiveShell, ns: dict[str, Any]) -> None:
    magics = shell.magics_manager.registry["SecureTrainMagics"]
    train(shell, "", "x = 1")
    pool_before = dict(magics.trainer._pool)
    train(shell, "--timeout 77", "x = 2")
    assert magics.trainer._pool == pool_before


def test_unsafe_local_is_marked_in_every_record(shell: InteractiveShell, ns: dict[str, Any],
                                                workspace: Workspace) -> None:
    train(shell, "--backend unsafe-local --outputs where", """
import os
where = os.environ["SECURENB_SANDBOX"]
""")
    assert ns["where"] == "unsafe-local"
    predicate = provenance(workspace)["predicate"]
    assert predicate["buildDefinition"]["internalParameters"]["unsafe"] is True
    assert predicate["runDetails"]["builder"]["id"].endswith("/unsafe-local")
    run_entries = audit_entries(workspace, "secure_train.run")
    assert run_entries and run_entries[-1]["details"]["unsafe"] is True


def test_unavailable_backend_fails_naming_it(shell: InteractiveShell, ns: dict[str, Any],
                                             monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(UsageError, match=r"'bwrap' is unavailable.*apt-get install bubblewrap"):
        train(shell, "--backend bwrap --memory 3g", "x = 1")


def test_bad_options_are_usage_errors(shell: InteractiveShell, ns: dict[str, Any]) -> None:
    with pytest.raises(UsageError):
        train(shell, "--network host", "x = 1")
    with pytest.raises(UsageError, match="--gpus"):
        train(shell, "--gpus lots", "x = 1")
    with pytest.raises(UsageError, match="output folder must not contain"):
        train(shell, "--output-dir .", "x = 1")


def test_no_workspace_is_a_clear_error(shell: InteractiveShell, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError, match="securenb init"):
        train(shell, "", "x = 1")
    assert os.getcwd() == str(tmp_path)


@pytest.mark.skipif(shutil.which("podman") is None, reason="podman is not installed")
def test_podman_backend_round_trip(shell: InteractiveShell, ns: dict[str, Any],
                                   workspace: Workspace) -> None:
    ns["arr"] = np.arange(3.0)
    train(shell, "--backend podman --inputs arr --outputs doubled,where", """
import os
doubled = arr * 2
where = [os.environ["SECURENB_SANDBOX"], os.getuid()]
""")
    assert list(ns["doubled"]) == [0.0, 2.0, 4.0] and ns["where"] == ["podman", 1000]
    predicate = provenance(workspace)["predicate"]
    assert predicate["runDetails"]["builder"]["id"].endswith("/podman")
    magics = shell.magics_manager.registry["SecureTrainMagics"]
    for key, kernel in list(magics.trainer._pool.items()):
        if kernel.spec.backend == "podman":
            kernel.shutdown(now=True)
            del magics.trainer._pool[key]
