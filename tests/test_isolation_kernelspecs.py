"""Isolated kernelspecs: `securenb kernels install/list/remove`, then run notebooks in them.

The provisioners are found through the entry point group
``jupyter_client.kernel_provisioners``. Until the installed package declares
them, ``provisioner_entry_points`` registers them from a temporary dist-info
folder (in this process and, through PYTHONPATH, in papermill's).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path

import nbformat
import pytest
from click.testing import CliRunner
from nbclient import NotebookClient

from securenb.cli.kernels_cmd import kernels
from securenb.isolation.detect import check_bwrap
from securenb.isolation.provisioner import PROVISIONERS

GROUP = "jupyter_client.kernel_provisioners"
bwrap_only = pytest.mark.skipif(not check_bwrap().available, reason=check_bwrap().detail)


@pytest.fixture
def provisioner_entry_points(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    have = {ep.name for ep in entry_points(group=GROUP)}
    if all(f"securenb-{b}" in have for b in PROVISIONERS):
        return
    dist = tmp_path / "eps" / "securenb_test_provisioners-0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: securenb-test-provisioners\n"
                                   "Version: 0\n")
    lines = [f"securenb-{b} = securenb.isolation.provisioner:{cls.__name__}"
             for b, cls in PROVISIONERS.items()]
    (dist / "entry_points.txt").write_text(f"[{GROUP}]\n" + "\n".join(lines) + "\n")
    monkeypatch.syspath_prepend(str(dist.parent))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(dist.parent), *filter(None, [os.environ.get("PYTHONPATH")])]))


@pytest.fixture
def jupyter_prefix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    prefix = tmp_path / "prefix"
    monkeypatch.setenv("JUPYTER_PATH", str(prefix / "share" / "jupyter"))
    yield prefix


def test_install_list_remove(jupyter_prefix: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(kernels, ["install", "--backend", "bwrap", "--backend", "podman",
                                     "--prefix", str(jupyter_prefix), "--json"])
    assert result.exit_code == 0, result.output
    installed = json.loads(result.output)
    assert [k["display_name"] for k in installed] == ["Python 3 (isolated, bwrap)",
                                                      "Python 3 (isolated, podman)"]
    spec = json.loads((Path(installed[0]["path"]) / "kernel.json").read_text())
    assert spec["interrupt_mode"] == "message"
    assert spec["metadata"]["kernel_provisioner"]["provisioner_name"] == "securenb-bwrap"
    assert spec["metadata"]["kernel_provisioner"]["config"]["python_env"]["prefix"] == sys.prefix
    listed = json.loads(runner.invoke(kernels, ["list", "--json"]).output)
    assert {k["name"] for k in listed} >= {"securenb-bwrap", "securenb-podman"}
    assert runner.invoke(kernels, ["remove", "securenb-podman"]).exit_code == 0
    listed = json.loads(runner.invoke(kernels, ["list", "--json"]).output)
    assert "securenb-podman" not in {k["name"] for k in listed}


def test_remove_refuses_kernels_that_are_not_ours(jupyter_prefix: Path) -> None:
    result = CliRunner().invoke(kernels, ["remove", "python3"])
    assert result.exit_code != 0 and "no securenb kernelspec named 'python3'" in str(
        result.exception)


def _notebook(folder: Path) -> nbformat.NotebookNode:
    (folder / "data.csv").write_text("a,b\n1,2\n")
    (folder / ".securenb").mkdir(exist_ok=True)
    (folder / ".securenb" / "config.toml").write_text("secret records\n")
    check = """
import os, pathlib
print("SANDBOX", os.environ.get("SECURENB_SANDBOX"))
print("DATA", open("data.csv").read().splitlines()[1])
print("RECORDS", os.listdir(".securenb"))
try:
    open("new.txt", "w")
    print("NOTEBOOK FOLDER WRITABLE")
except OSError:
    print("NOTEBOOK FOLDER READ-ONLY")
pathlib.Path("outputs/result.json").write_text("{}")
print("HOME", os.listdir(os.path.expanduser("~")))
"""
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(check)],
                                    metadata={"kernelspec": {
        "name": "securenb-bwrap", "display_name": "Python 3 (isolated, bwrap)"}})


@bwrap_only
def test_notebook_runs_in_the_isolated_kernel(jupyter_prefix: Path, tmp_path: Path,
                                              provisioner_entry_points: None) -> None:
    CliRunner().invoke(kernels, ["install", "--prefix", str(jupyter_prefix)])
    work = tmp_path / "project"
    work.mkdir()
    nb = _notebook(work)
    NotebookClient(nb, kernel_name="securenb-bwrap", timeout=60,
                   resources={"metadata": {"path": str(work)}}).execute()
    out = "".join(o.get("text", "") for o in nb.cells[0].outputs)
    assert "SANDBOX bwrap" in out and "DATA 1,2" in out
    assert "RECORDS []" in out and "NOTEBOOK FOLDER READ-ONLY" in out
    assert "HOME" in out and Path.home().name not in out.split("HOME")[1]
    assert (work / "outputs" / "result.json").read_text() == "{}"
    assert not (work / "new.txt").exists()


@bwrap_only
def test_papermill_runs_with_the_isolated_kernel(jupyter_prefix: Path, tmp_path: Path,
                                                 provisioner_entry_points: None) -> None:
    pytest.importorskip("papermill")
    CliRunner().invoke(kernels, ["install", "--prefix", str(jupyter_prefix)])
    work = tmp_path / "project"
    work.mkdir()
    nbformat.write(_notebook(work), work / "in.ipynb")
    proc = subprocess.run(
        [sys.executable, "-m", "papermill", "-k", "securenb-bwrap", "--cwd", str(work),
         str(work / "in.ipynb"), str(work / "out.ipynb")],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "SANDBOX bwrap" in (work / "out.ipynb").read_text()


def test_kubernetes_kernelspec_configures_its_provisioner(jupyter_prefix: Path) -> None:
    """A pod kernel runs the image's Python; its spec carries the image and namespace."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.provisioning import KernelProvisionerFactory

    from securenb.isolation.kube import KubernetesProvisioner

    runner = CliRunner()
    refused = runner.invoke(kernels, ["install", "--backend", "kubernetes",
                                      "--prefix", str(jupyter_prefix)])
    assert refused.exit_code != 0
    assert "needs --image" in str(refused.exception)
    misplaced = runner.invoke(kernels, ["install", "--backend", "bwrap", "--image", "x",
                                        "--prefix", str(jupyter_prefix)])
    assert "for --backend kubernetes" in str(misplaced.exception)

    result = runner.invoke(kernels, ["install", "--backend", "kubernetes", "--image",
                                     "registry.example/kernel:1", "--namespace", "ml",
                                     "--prefix", str(jupyter_prefix), "--json"])
    assert result.exit_code == 0, result.output
    (installed,) = json.loads(result.output)
    assert installed["display_name"] == "Python 3 (isolated, kubernetes)"
    assert "securenb-kubernetes" in {k["name"] for k in json.loads(
        runner.invoke(kernels, ["list", "--json"]).output)}

    spec = KernelSpecManager().get_kernel_spec("securenb-kubernetes")
    if not entry_points(group=GROUP, name="securenb-kubernetes"):
        pytest.skip("the package's entry points are not installed (pip install -e .)")
    provisioner = KernelProvisionerFactory.instance().create_provisioner_instance(
        "k1", spec, parent=None
    )
    assert isinstance(provisioner, KubernetesProvisioner)
    assert (provisioner.image, provisioner.namespace) == ("registry.example/kernel:1", "ml")


@bwrap_only
def test_a_whole_notebook_kernel_is_recorded_as_a_run(jupyter_prefix: Path, tmp_path: Path,
                                                      provisioner_entry_points: None,
                                                      passphrase: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from securenb.core.attest import SLSA_PROVENANCE_PREDICATE
    from securenb.core.workspace import Workspace

    CliRunner().invoke(kernels, ["install", "--prefix", str(jupyter_prefix)])
    work = tmp_path / "project"
    work.mkdir()
    ws = Workspace.init(work, passphrase)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import json, os\n"
        "json.dump({'acc': 0.9}, open(os.environ['SECURENB_OUTPUT_DIR'] + '/metrics.json', 'w'))\n"
        "os.symlink('/etc/passwd', os.environ['SECURENB_OUTPUT_DIR'] + '/link.txt')")])
    # what jupyter_server sets for a notebook's kernel: the run names that notebook
    monkeypatch.setenv("JPY_SESSION_NAME", str(work / "train.ipynb"))
    NotebookClient(nb, kernel_name="securenb-bwrap", timeout=60,
                   resources={"metadata": {"path": str(work)}}).execute()
    runs = [r for r in ws.store.list_runs(limit=10) if r.kind == "isolated_kernel"]
    assert len(runs) == 1 and runs[0].status == "ok" and runs[0].provenance, runs
    _, statement = ws.load_attestation(runs[0].provenance)
    assert statement["predicateType"] == SLSA_PROVENANCE_PREDICATE
    subjects = {s["name"] for s in statement["subject"]}
    assert "outputs/metrics.json" in subjects and "outputs/link.txt" not in subjects
    assert statement["predicate"]["runDetails"]["builder"]["id"].endswith("/bwrap")
    external = statement["predicate"]["buildDefinition"]["externalParameters"]
    assert external["notebook"] == "train.ipynb"
    assert "outputs/metrics.json" in {a.path for a in ws.store.list_artifacts()}
    assert not (work / "outputs" / "link.txt").exists()


@bwrap_only
def test_a_whole_notebook_kernel_gets_one_cpu_budget_for_all_its_processes(
        jupyter_prefix: Path, tmp_path: Path, provisioner_entry_points: None,
        passphrase: str) -> None:
    """Four workers, each under RLIMIT_CPU (3 s), pass the budget together: the kernel is
    stopped (what the server's and nbclient's poll of the kernel does) and the run says why."""
    from nbclient.exceptions import DeadKernelError

    from securenb.core.workspace import Workspace

    CliRunner().invoke(kernels, ["install", "--prefix", str(jupyter_prefix)])
    work = tmp_path / "project"
    work.mkdir()
    (work / "pyproject.toml").write_text("[tool.securenb.isolation]\ncpu_seconds = 3\n")
    ws = Workspace.init(work, passphrase)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import os, time\n"
        "for _ in range(4):\n"
        "    if os.fork() == 0:\n"
        "        end = time.process_time() + 2.9\n"
        "        while time.process_time() < end:\n"
        "            pass\n"
        "        os._exit(0)\n"
        "for _ in range(4):\n"
        "    os.wait()\n"
        "print('ALL WORKERS FINISHED')\n")])
    with pytest.raises(DeadKernelError):
        NotebookClient(nb, kernel_name="securenb-bwrap", timeout=120,
                       resources={"metadata": {"path": str(work)}}).execute()
    assert "ALL WORKERS FINISHED" not in json.dumps(nb.cells[0].outputs)
    runs = [r for r in ws.store.list_runs(limit=10) if r.kind == "isolated_kernel"]
    assert len(runs) == 1 and runs[0].status == "error" and runs[0].provenance, runs
    _, statement = ws.load_attestation(runs[0].provenance)
    assert "passed the CPU-time limit (3 s)" in json.dumps(statement)
