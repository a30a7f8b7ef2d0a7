"""What a plain `pip install securenb` gives a new user: the commands, the example
notebook, kernelspecs where `--help` says, a LICENSE, and a `--help` that imports
no command.

The wheel test builds the wheel, installs it into a fresh virtual environment
without the test extra (through pip's configured indexes) and runs the commands
and the example notebook there, with that environment's own Python as the kernel.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import nbformat
import pytest
from click.testing import CliRunner
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

from securenb.cli.kernels_cmd import kernels
from securenb.cli.main import COMMANDS, cli
from securenb.core.locate import read_toml
from securenb.isolation.detect import check_bwrap

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "02-secure-training-pipeline.ipynb"


def test_help_lists_every_command_without_importing_one() -> None:
    code = ("import sys; from securenb.cli.main import main; sys.argv = ['securenb', '--help']\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.startswith('securenb.cli.') "
            "and m.endswith('_cmd')))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=60)
    assert proc.stdout.strip().splitlines()[-1] == "[]"
    for name in COMMANDS:
        assert f"  {name} " in proc.stdout


def test_short_help_matches_each_command() -> None:
    from securenb.cli.main import SHORT_HELP

    ctx = click.Context(cli)
    assert set(SHORT_HELP) == set(COMMANDS)
    for name, text in SHORT_HELP.items():
        command = cli.get_command(ctx, name)
        assert command is not None
        assert command.get_short_help_str(limit=1000) == text


def test_license_is_the_apache_2_text_pyproject_declares() -> None:
    meta = read_toml(REPO / "pyproject.toml")["project"]
    assert meta["license"] == "Apache-2.0"
    text = (REPO / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text


def test_package_description_claims_only_what_is_built() -> None:
    meta = read_toml(REPO / "pyproject.toml")["project"]
    if not (REPO / "securenb" / "fairness").is_dir():
        assert "bias" not in meta["description"].lower()


@pytest.fixture
def kernel_dirs() -> Iterator[list[Path]]:
    from jupyter_client.kernelspec import SYSTEM_JUPYTER_PATH
    dirs = [Path(sys.prefix, "share", "jupyter", "kernels", "securenb-bwrap"),
            Path(SYSTEM_JUPYTER_PATH[0], "kernels", "securenb-bwrap")]
    before = {d: d.exists() for d in dirs}
    yield dirs
    for d in dirs:
        if not before[d]:
            shutil.rmtree(d, ignore_errors=True)


def test_kernels_install_defaults_to_this_environment(kernel_dirs: list[Path]) -> None:
    result = CliRunner().invoke(kernels, ["install", "--json"])
    assert result.exit_code == 0, result.output
    (installed,) = json.loads(result.output)
    assert Path(installed["path"]) == kernel_dirs[0]
    both = CliRunner().invoke(kernels, ["install", "--user", "--prefix", "/tmp/x"])
    assert both.exit_code != 0 and "not both" in both.output


@pytest.mark.slow
@pytest.mark.skipif(not check_bwrap().available, reason=check_bwrap().detail)
def test_a_plain_install_runs_the_commands_and_the_example_notebook(tmp_path: Path) -> None:
    dist, venv = tmp_path / "dist", tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist),
                    str(REPO)], check=True, timeout=600)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    (wheel,) = dist.glob("securenb-*.whl")
    subprocess.run([str(python), "-m", "pip", "install", "-q", str(wheel)], check=True,
                   timeout=1500)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env['PATH']}"
    securenb = str(venv / "bin" / "securenb")

    def run(*args: str, cwd: Path = tmp_path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([securenb, *args], capture_output=True, text=True, cwd=cwd,
                              env=env, timeout=300, check=False)

    assert run("--help").returncode == 0
    (tmp_path / "rows.csv").write_text("age,name\n31,ann\n42,bob\n")
    kek = f"file:{tmp_path / 'kek.b64'}"
    assert run("data", "new-kek", kek).returncode == 0
    encrypted = run("data", "encrypt", "rows.csv", "--kek", kek, "--infer-schema")
    assert encrypted.returncode == 0, encrypted.stderr
    assert "Traceback" not in encrypted.stderr

    project = tmp_path / "project"
    project.mkdir()
    env["SECURENB_EXAMPLE_PROJECT"] = str(project)
    spec = tmp_path / "kernels" / "fresh"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "fresh venv", "language": "python"}))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("import sys; print('PREFIX', sys.prefix)"))
    km = KernelManager(kernel_name="fresh",
                       kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(spec.parent)]))
    NotebookClient(nb, km=km, timeout=600, resources={"metadata": {"path": str(project)}}
                   ).execute(env=env)
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    assert f"PREFIX {venv}" in nb.cells[-1].outputs[0]["text"]
