"""Red team: rich output of a whole-notebook isolated kernel (the securenb-bwrap kernelspec).

A %%secure_train cell's output is made inert by the parent (securenb.isolation
.display). A whole-notebook isolated kernel talks to JupyterLab directly: the
provisioner is not in the message path, so what hostile code in it displays
(``application/javascript``, ``<script>``) reaches the user's JupyterLab, where
output of a running kernel is trusted and its JavaScript runs with the user's
rights (the Jupyter API: files, terminals, i.e. the host). docs/isolation.md
records this as unfiltered. OPEN: strict xfail until the output is filtered
(e.g. an iopub proxy in the provisioner); it then passes and the mark goes.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from click.testing import CliRunner
from nbclient import NotebookClient
from test_isolation_kernelspecs import (  # noqa: F401 - fixtures
    bwrap_only,
    jupyter_prefix,
    provisioner_entry_points,
)

from securenb.cli.kernels_cmd import kernels


@bwrap_only
@pytest.mark.xfail(strict=True, reason="open: an isolated kernel's rich output reaches "
                   "JupyterLab unfiltered (docs/isolation.md)")
def test_an_isolated_kernel_cannot_send_javascript_to_the_browser(
        jupyter_prefix: Path, tmp_path: Path,  # noqa: F811
        provisioner_entry_points: None) -> None:  # noqa: F811
    CliRunner().invoke(kernels, ["install", "--prefix", str(jupyter_prefix)])
    work = tmp_path / "project"
    work.mkdir()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(  # type: ignore[no-untyped-call]
        "from IPython.display import HTML, Javascript, display\n"
        "display(Javascript(\"fetch('/api/terminals', {method: 'POST'})\"))\n"
        "display(HTML('<img src=x onerror=\"alert(1)\"><script>alert(2)</script>'))\n")])
    NotebookClient(nb, kernel_name="securenb-bwrap", timeout=60,
                   resources={"metadata": {"path": str(work)}}).execute()
    data = [o.get("data", {}) for o in nb.cells[0].outputs]
    assert data, nb.cells[0].outputs
    assert not any("application/javascript" in d for d in data), data
    assert not any("<script" in str(d.get("text/html", "")) or "onerror" in
                   str(d.get("text/html", "")) for d in data), data
