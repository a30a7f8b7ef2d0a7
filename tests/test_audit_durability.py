"""Every run a notebook reports as done is on record in the audit log, even when the
kernel is shut down (or killed) right after its last cell; and `audit verify
--against-store` finds records the audit log does not account for.

Real kernels: papermill runs of a small notebook whose cells use %%secure_train in
bwrap, and an nbclient run whose kernel is killed as soon as the last cell replies.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from click.testing import CliRunner
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

from securenb.cli.main import cli
from securenb.core.store import Artifact, AttestationRecord
from securenb.core.workspace import Workspace
from securenb.isolation.detect import check_bwrap

bwrap_only = pytest.mark.skipif(not check_bwrap().available, reason=check_bwrap().detail)


def _train_notebook(cells: int) -> nbformat.NotebookNode:
    code = [nbformat.v4.new_code_cell("%load_ext securenb")]
    code += [nbformat.v4.new_code_cell(f"%%secure_train --backend bwrap\nv{i} = {i}\nprint({i})")
             for i in range(cells)]
    return nbformat.v4.new_notebook(cells=code, metadata={"kernelspec": {
        "name": "python3", "display_name": "Python 3", "language": "python"}})


def _audited_runs(ws: Workspace) -> set[str]:
    return {r.entry.subject.removeprefix("run:") for r in ws.audit_log.read()
            if r.entry.action == "secure_train.run"}


def _against_store(root: Path) -> tuple[int, dict[str, object]]:
    result = CliRunner().invoke(cli, ["-C", str(root), "audit", "verify", "--against-store",
                                      "--json"])
    return result.exit_code, json.loads(result.output)


@bwrap_only
def test_papermill_runs_keep_every_audit_entry(workspace: Workspace, tmp_path: Path) -> None:
    """The issue's reproduction: 3 papermill runs of a 2-run notebook, 6 runs on record."""
    pytest.importorskip("papermill")
    nbformat.write(_train_notebook(2), tmp_path / "train.ipynb")
    for n in range(3):
        proc = subprocess.run(
            [sys.executable, "-m", "papermill", "--cwd", str(tmp_path), "-k", "python3",
             str(tmp_path / "train.ipynb"), str(tmp_path / f"out{n}.ipynb")],
            capture_output=True, text=True, timeout=180, check=False,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
    ws = Workspace(tmp_path)
    runs = ws.store.list_runs(limit=100)
    assert len(runs) == 6
    assert [r.status for r in runs] == ["ok"] * 6
    assert _audited_runs(ws) == {r.id for r in runs}
    code, report = _against_store(tmp_path)
    assert code == 0 and report["ok"], report


@bwrap_only
def test_a_kernel_killed_after_its_last_cell_loses_no_record(workspace: Workspace,
                                                             tmp_path: Path) -> None:
    """A cell that has replied is on record: killing the kernel at once loses nothing."""
    nb = _train_notebook(1)
    km = KernelManager(kernel_name="python3")
    client = NotebookClient(nb, km=km, timeout=120,
                            resources={"metadata": {"path": str(tmp_path)}})
    with client.setup_kernel(cwd=str(tmp_path)):
        for index, cell in enumerate(nb.cells):
            client.execute_cell(cell, index)
        km.shutdown_kernel(now=True)  # SIGKILL right after the reply
    ws = Workspace(tmp_path)
    runs = ws.store.list_runs(limit=10)
    assert [r.status for r in runs] == ["ok"]
    assert _audited_runs(ws) == {runs[0].id}


def test_against_store_names_records_the_log_does_not_account_for(workspace: Workspace,
                                                                  tmp_path: Path) -> None:
    """What a writer killed between the store and the log leaves: `audit verify` alone
    still says verified (the log itself is intact); --against-store names each record."""
    ws = workspace
    (tmp_path / "model.bin").write_bytes(b"weights")
    ws.record_artifact(tmp_path / "model.bin")
    code, report = _against_store(tmp_path)
    assert code == 0 and report["ok"], report
    ws.store.start_run("0" * 32, "secure_train")  # a run whose record was lost
    envelope = ws.store.put_blob(b'{"payload": "x"}')
    ws.store.add_attestation(AttestationRecord(envelope, "https://example.org/p", "k",
                                               "2026-01-01T00:00:00Z", (("m", "a" * 64),)))
    (tmp_path / "other.bin").write_bytes(b"other")
    ws.store.add_artifacts([Artifact("b" * 64, "other.bin", "application/octet-stream", 5,
                                     None, "2026-01-01T00:00:00Z")])
    assert CliRunner().invoke(cli, ["-C", str(tmp_path), "audit", "verify"]).exit_code == 0
    code, report = _against_store(tmp_path)
    assert code == 1 and not report["ok"]
    problems = "\n".join(report["problems"])
    assert f"run {'0' * 32} (secure_train" in problems and "never finished" in problems
    assert f"attestation sha256:{envelope}" in problems
    assert "artifact other.bin" in problems
    assert len(report["problems"]) == 3


def test_a_signature_whose_audit_step_died_is_found(workspace: Workspace, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """#11's case: the .sig and its attestation written, then the model.sign entry lost."""
    (tmp_path / "model.bin").write_bytes(b"weights" * 100)
    real = Workspace.audit

    def dies_at_sign(self: Workspace, action: str, subject: str,
                     details: dict[str, object] | None = None) -> object:
        if action == "model.sign":
            raise RuntimeError("killed between the attestation and the audit entry")
        return real(self, action, subject, details)

    monkeypatch.setattr(Workspace, "audit", dies_at_sign)
    signed = CliRunner().invoke(cli, ["-C", str(tmp_path), "sign", "model.bin"])
    assert signed.exit_code != 0
    monkeypatch.setattr(Workspace, "audit", real)
    code, report = _against_store(tmp_path)
    assert code == 1
    assert any("the signature it attests has no audit entry" in p for p in report["problems"])
