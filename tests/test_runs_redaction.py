"""A secret printed in pieces stays redacted in every copy of a run's output.

The kernel sends output in messages; a secret written in two halves (two flushed
``print(..., end="")`` calls, stdout then a display, one cell then the next) reaches
papermill as two messages. The executed notebook (signed), the ``--log-output`` log and
the ``stdout_file``/``stderr_file`` copies must show the mark, never the value, and the
output must still verify (its digests are of the redacted bytes).

Real papermill (``securenb run`` and papermill's Python API with the engine's options:
papermill's CLI has no ``--secret``), real ipykernel in a real bwrap sandbox.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from runs_support import load, notebook, run, verify

from securenb.core.workspace import Workspace
from securenb.signing import service

SECRET = "s3cr3t-token-value-42"
MARK = "[REDACTED:API_TOKEN]"
HALF = "t = os.environ['API_TOKEN']\n"
CELLS = (
    "import os, sys\n" + HALF,
    # stdout to stdout, two messages
    "print(t[:9], end='')\nsys.stdout.flush()\nprint(t[9:])",
    # stdout to a display
    "print(t[:9], end='')\nsys.stdout.flush()\ndisplay({'text/plain': t[9:]}, raw=True)",
    # a display to stdout
    "display({'text/plain': t[:9]}, raw=True)\nprint(t[9:])",
    # stderr to stderr
    "print(t[:9], end='', file=sys.stderr)\nsys.stderr.flush()\nprint(t[9:], file=sys.stderr)",
    # a display to a display
    "display({'text/plain': t[:9]}, raw=True)\ndisplay({'text/plain': t[9:]}, raw=True)",
    # three pieces
    "print(t[:5], end='')\nsys.stdout.flush()\nprint(t[5:12], end='')\nsys.stdout.flush()\n"
    "print(t[12:])",
    # one cell to the next (the notebook shows each half in its cell; the copies join them)
    "print(t[:9], end='')",
    "print(t[9:])",
    "print(t[:9], end='', file=sys.stderr)",
    "print(t[9:], file=sys.stderr)",
)
WITHIN = (1, 2, 3, 4, 5, 6)  # cells whose own output finishes the secret


@pytest.fixture
def ws(workspace: Any) -> Workspace:
    # pytest makes tmp_path 0700; the sandbox's user must be able to enter the project
    workspace.root.chmod(0o755)
    return workspace  # type: ignore[no-any-return]


def shown(cell: dict[str, Any]) -> str:
    """A cell's output as its reader sees it: streams and plain texts, in order."""
    texts = []
    for out in cell.get("outputs", []):
        text = out.get("text") if out["output_type"] == "stream" else \
            out.get("data", {}).get("text/plain", "")
        texts.append("".join(text) if isinstance(text, list) else text or "")
    return "".join(texts)


def check_notebook(ws: Workspace, path: Path) -> None:
    assert SECRET not in path.read_text()
    cells = load(path)["cells"]
    for i, cell in enumerate(cells):
        assert SECRET not in shown(cell), (i, cell["outputs"])
    for i in WITHIN:
        assert shown(cells[i]).strip() == MARK, (i, cells[i]["outputs"])
    # nothing held back was lost: each cell shows its half
    assert shown(cells[-4]) == SECRET[:9] and shown(cells[-3]) == SECRET[9:] + "\n"
    result = verify(ws, path)
    assert result.verified, result.problems


def test_securenb_run_redacts_split_secret_in_notebook_and_log(ws: Workspace) -> None:
    nb = notebook(ws.root / "in.ipynb", *CELLS)
    proc = run("securenb", "run", "--no-progress-bar", nb.name, "out.ipynb", "--secret",
               "API_TOKEN", "--log-output", cwd=ws.root, check=True,
               env={"API_TOKEN": SECRET})
    check_notebook(ws, ws.root / "out.ipynb")
    log = proc.stdout + proc.stderr
    assert SECRET not in log
    assert MARK in log  # stderr reaches the log as warnings


API_RUN = """
import logging, sys
import papermill
from securenb.runs.api import engine
engine()
from securenb.runs.engine import RunOptions
logging.basicConfig(level=logging.INFO, format="%(message)s")  # as papermill's CLI
with open("stdout.txt", "w") as out, open("stderr.txt", "w") as err:
    papermill.execute_notebook("in.ipynb", "out.ipynb", engine_name="securenb",
                               log_output=True, stdout_file=out, stderr_file=err,
                               progress_bar=False,
                               securenb=RunOptions(secrets=("API_TOKEN",)))
"""


def test_papermill_copies_redact_split_secret_across_cells(ws: Workspace) -> None:
    notebook(ws.root / "in.ipynb", *CELLS)
    proc = run(Path(sys.executable).name, "-c", API_RUN, cwd=ws.root, check=True,
               env={"API_TOKEN": SECRET})
    check_notebook(ws, ws.root / "out.ipynb")
    assert SECRET not in proc.stdout + proc.stderr
    assert MARK in proc.stderr  # the log: stdout as info, stderr as warnings
    stdout = (ws.root / "stdout.txt").read_text()
    stderr = (ws.root / "stderr.txt").read_text()
    # every piece written, in order; across cells the copy is one stream
    assert stdout == f"{MARK}\n" * 4, stdout
    assert stderr == f"{MARK}\n" * 2, stderr



def test_held_tail_of_a_cell_whose_kernel_died_is_kept_and_signed(ws: Workspace) -> None:
    """The cell never ends (no idle message): what was held back still shows."""
    nb = notebook(ws.root / "in.ipynb", "import os, signal, sys, time\n" + HALF +
                  "print('start', t[:9], end='')\nsys.stdout.flush()\ntime.sleep(2)\n"
                  "os.kill(os.getpid(), signal.SIGKILL)")
    proc = run("securenb", "run", "--no-progress-bar", nb.name, "out.ipynb", "--secret",
               "API_TOKEN", cwd=ws.root, env={"API_TOKEN": SECRET})
    assert proc.returncode == 1, proc.stderr
    out = load(ws.root / "out.ipynb")
    assert shown(out["cells"][0]) == f"start {SECRET[:9]}"
    result = service.verify(ws, ws.root / "out.ipynb", allow_failed=True)  # signed as failed
    assert result.verified, result.problems
    assert result.run["status"] == "failed"
