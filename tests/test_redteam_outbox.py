"""Red team: siblings of the outbox findings, tried by hostile ``%%secure_train`` cells in bwrap.

The first version's attacks (symlinks, FIFOs, sockets, escaped names, stray
processes) are in test_isolation_boundary. Here: hard links to what the
sandbox can read, sparse files that claim terabytes, names that look like
others, and a thread (not a process: it survives the cell inside the warm
kernel) that keeps writing after its run was recorded.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from secure_train_support import provenance, train

from securenb.core.workspace import Workspace
from securenb.isolation.detect import check_bwrap
from securenb.kernel.train_magics import SecureTrainError

pytestmark = pytest.mark.skipif(not check_bwrap().available, reason=check_bwrap().detail)


@pytest.fixture
def ns(shell: InteractiveShell, workspace: Workspace) -> dict[str, Any]:
    shell.user_ns.clear()
    user_ns: dict[str, Any] = shell.user_ns
    return user_ns


def _subjects(ws: Workspace) -> list[str]:
    return [s["name"] for s in provenance(ws)["subject"]]


def test_hard_links_to_inputs_and_earlier_outputs_are_not_made(
        shell: InteractiveShell, ns: dict[str, Any], workspace: Workspace,
        tmp_path: Path) -> None:
    """Held: the outbox is its own mount, so link() to an input or to the read-only earlier
    outputs fails (EXDEV); an output is always a new file written by the host."""
    secret = tmp_path / "input.txt"
    secret.write_text("input bytes")
    train(shell, "", "from securenb.sandbox import output_dir\n"
                     "(output_dir() / 'earlier.txt').write_text('earlier')")
    ns["src"] = str(secret)
    train(shell, f"--inputs {secret} --outputs errors", """
import os
from securenb.sandbox import output_dir
out, errors = output_dir(), []
earlier = os.environ["SECURENB_PREVIOUS_OUTPUTS"] + "/earlier.txt"
for name, target in (("in.txt", SRC), ("prev.txt", earlier)):
    try:
        os.link(target, out / name)
    except OSError as exc:
        errors.append(exc.errno)
""".replace("SRC", repr(str(secret))))
    import errno

    assert ns["errors"] and set(ns["errors"]) <= {errno.EXDEV, errno.EPERM, errno.ENOENT}
    outputs = workspace.root / "outputs"
    assert not (outputs / "in.txt").exists() and not (outputs / "prev.txt").exists()
    assert secret.stat().st_nlink == 1
    assert (outputs / "earlier.txt").stat().st_nlink == 1


def test_a_sparse_file_claiming_a_terabyte_publishes_nothing(
        shell: InteractiveShell, ns: dict[str, Any], workspace: Workspace,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Held: the size cap is checked before reading; nothing half-copied is left."""
    with pytest.raises(SecureTrainError) as failed:
        train(shell, "", """
from securenb.sandbox import output_dir
(output_dir() / "ok.txt").write_text("small")
with open(output_dir() / "huge.bin", "wb") as f:
    f.truncate(1 << 40)
""")
    assert "bytes of outputs" in str(failed.value), failed.value
    outputs = workspace.root / "outputs"
    left = sorted(p.name for p in outputs.rglob("*")) if outputs.exists() else []
    assert left == [], left


def test_look_alike_names_are_refused(shell: InteractiveShell, ns: dict[str, Any],
                                      workspace: Workspace,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    """Held: bidi overrides and zero-width characters anywhere in a name are refused."""
    train(shell, "", """
from securenb.sandbox import output_dir
out = output_dir()
(out / "model\\u202etp.lekcip").write_text("rtl")
(out / "mo\\u200bdel.pt").write_text("zero width")
(out / "model\\u2066.pt").write_text("isolate")
(out / "model.pt").write_text("real")
""")
    present = {p.name for p in (workspace.root / "outputs").iterdir()}
    assert present == {"model.pt"}, present


def test_a_thread_left_running_does_not_write_into_the_next_run(
        shell: InteractiveShell, ns: dict[str, Any], workspace: Workspace) -> None:
    """A thread lives in the warm kernel after its cell: what it writes later must not be
    listed as the next run's output (nor replace that run's outputs unnoticed)."""
    train(shell, "", """
import threading, time
from securenb.sandbox import output_dir
def lurk():
    time.sleep(2)
    (output_dir() / "late.txt").write_text("written after the run was recorded")
threading.Thread(target=lurk, daemon=True).start()
""")
    time.sleep(3)
    train(shell, "", "x = 1")
    assert not any("late.txt" in s for s in _subjects(workspace)), _subjects(workspace)
    assert not (workspace.root / "outputs" / "late.txt").exists()
