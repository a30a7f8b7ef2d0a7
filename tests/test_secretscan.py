"""Secrets in notebooks: found in sources and outputs (cell, part, line, kind; never the
value), stripped from outputs, SARIF, and `securenb sign` refuses a notebook holding them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from securenb.secretscan import SecretsFound, refuse_if_secrets, scan_file, strip

SECURENB = str(Path(sys.executable).parent / "securenb")
# Well-known documentation examples and generated test values, never real credentials
AWS_KEY = "AKIAIOSFODNN7EXAMPLE"
GITHUB_TOKEN = "ghp_" + "Zx9" * 12
STRIPE = "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc"
PRIVATE_KEY = "-----BEGIN RSA PRIVATE KEY-----"
SECRET_VALUES = (AWS_KEY, GITHUB_TOKEN, STRIPE, PRIVATE_KEY)


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SECURENB, *args], capture_output=True, text=True, check=False,
                          cwd=cwd)


def notebook(path: Path, leaky: bool = True) -> Path:
    nb = nbformat.v4.new_notebook()
    code = nbformat.v4.new_code_cell("import os\nkey = os.environ['API_KEY']\nprint(key)")
    code.outputs = [nbformat.v4.new_output("stream", name="stdout",
                                           text=(f"{GITHUB_TOKEN}\n" if leaky else "ok\n"))]
    shown = nbformat.v4.new_code_cell("creds")
    shown.outputs = [nbformat.v4.new_output("execute_result", execution_count=2, data={
        "text/plain": f"{{'aws': '{AWS_KEY}'}}" if leaky else "{}",
        "image/png": "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
                     "+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="})]
    nb.cells = [nbformat.v4.new_markdown_cell("# Training"), code, shown]
    if leaky:
        nb.cells.append(nbformat.v4.new_code_cell(f"x = 1\nstripe_key = '{STRIPE}'"))
    nbformat.write(nb, path)
    return path


def test_finds_sources_and_outputs_by_cell_part_line(tmp_path: Path) -> None:
    found = scan_file(notebook(tmp_path / "nb.ipynb"))
    where = {(f.cell, f.part, f.line) for f in found}
    assert (1, "outputs[0] stream", 1) in where
    assert (2, "outputs[0] text/plain", 1) in where
    assert (3, "source", 2) in where
    kinds = {k for f in found for k in f.kinds}
    assert {"GitHub Token", "AWS Access Key", "Stripe Access Key"} <= kinds
    assert all(f.cell != 0 for f in found)  # markdown without secrets, image data skipped
    text = json.dumps([f.to_json() for f in found])
    assert not any(value in text for value in SECRET_VALUES)


def test_clean_notebook_and_text_file(tmp_path: Path) -> None:
    assert scan_file(notebook(tmp_path / "nb.ipynb", leaky=False)) == []
    config = tmp_path / "settings.env"
    config.write_text(f"DEBUG=1\nAWS_ACCESS_KEY_ID={AWS_KEY}\n")
    (finding,) = scan_file(config)
    assert finding.line == 2 and finding.cell is None and "AWS Access Key" in finding.kinds


def test_cli_scan_exit_codes_and_sarif_never_show_values(tmp_path: Path) -> None:
    notebook(tmp_path / "nb.ipynb")
    done = cli("secrets", "scan", "nb.ipynb", "--sarif", "s.sarif", cwd=tmp_path)
    assert done.returncode == 1
    assert "nb.ipynb cell 1 outputs[0] stream line 1: possible" in done.stdout
    sarif = (tmp_path / "s.sarif").read_text()
    assert json.loads(sarif)["runs"][0]["results"][0]["level"] == "error"
    for value in SECRET_VALUES:
        assert value not in done.stdout + done.stderr and value not in sarif
    notebook(tmp_path / "clean.ipynb", leaky=False)
    assert cli("secrets", "scan", "clean.ipynb", cwd=tmp_path).returncode == 0
    done = cli("secrets", "scan", "missing.ipynb", cwd=tmp_path)
    assert done.returncode == 2 and "no such file" in done.stderr


def test_strip_removes_leaky_outputs_and_reports_sources(tmp_path: Path) -> None:
    path = notebook(tmp_path / "nb.ipynb")
    result = strip(path)
    assert result.removed == 2
    assert [(f.cell, f.part) for f in result.remaining] == [(3, "source")]
    after = nbformat.read(path, as_version=4)
    nbformat.validate(after)
    assert after.cells[1].outputs == [] and after.cells[2].outputs == []
    assert after.cells[1].source.startswith("import os")  # code untouched
    assert all(f.part == "source" for f in scan_file(path))
    done = cli("secrets", "strip", "nb.ipynb", cwd=tmp_path)
    assert done.returncode == 1 and "still in a source: " in done.stderr


def test_refuse_if_secrets(tmp_path: Path) -> None:
    with pytest.raises(SecretsFound, match=r"possible secret\(s\), first at .* cell 1"):
        refuse_if_secrets(notebook(tmp_path / "nb.ipynb"))
    refuse_if_secrets(notebook(tmp_path / "clean.ipynb", leaky=False))


def test_sign_refuses_a_notebook_with_secrets_unless_allowed(workspace: object,
                                                             tmp_path: Path) -> None:
    path = notebook(tmp_path / "nb.ipynb")
    done = cli("sign", str(path), cwd=tmp_path)
    assert done.returncode == 1
    assert "possible secret(s)" in done.stderr and "--allow-secrets" in done.stderr
    assert "signature" not in nbformat.read(path, as_version=4).metadata.get("securenb", {})
    done = cli("sign", str(path), "--allow-secrets", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    clean = notebook(tmp_path / "clean.ipynb", leaky=False)
    assert cli("sign", str(clean), cwd=tmp_path).returncode == 0
