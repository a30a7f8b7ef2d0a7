"""Red team: a sandbox's secret carried out through the names of its output files.

Secrets given to a cell are redacted from everything it prints or displays, and
never recorded (test_secure_train). File names are neither printed by the cell
nor data: the host prints rejected names itself and records accepted ones in
the run's provenance, the artifact index and the audit log. A hostile cell
names a file after the secret. Real bwrap.
"""

from __future__ import annotations

from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from secure_train_support import train

from securenb.core.workspace import Workspace
from securenb.isolation.detect import check_bwrap

pytestmark = pytest.mark.skipif(not check_bwrap().available, reason=check_bwrap().detail)

SECRET = "tok-0f5b2a1c9d8e7f60"  # a test-only value


@pytest.fixture
def ns(shell: InteractiveShell, workspace: Workspace) -> dict[str, Any]:
    shell.user_ns.clear()
    user_ns: dict[str, Any] = shell.user_ns
    return user_ns


def test_a_secret_in_output_names_is_neither_shown_nor_recorded(
        shell: InteractiveShell, ns: dict[str, Any], workspace: Workspace,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Crossed on the first version: the name was published, recorded and (when rejected
    for a control character) printed by the host, past the redactor."""
    monkeypatch.setenv("TRAIN_TOKEN", SECRET)
    train(shell, "--secret TRAIN_TOKEN", """
import os
from securenb.sandbox import output_dir
token = os.environ["TRAIN_TOKEN"]
(output_dir() / f"model-{token}.txt").write_text("weights")
(output_dir() / f"{token}\\x07").write_text("bell")
(output_dir() / "sub").mkdir()
(output_dir() / "sub" / token).mkdir()
(output_dir() / "ok.txt").write_text("fine")
""")
    out = capsys.readouterr()
    assert SECRET not in out.out + out.err
    assert "[REDACTED:TRAIN_TOKEN]" in out.err and "secret" in out.err
    outputs = workspace.root / "outputs"
    assert sorted(p.name for p in outputs.rglob("*")) == ["ok.txt", "sub"]
    for path in workspace.dir.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def test_a_secret_split_in_three_across_streams_is_redacted(
        shell: InteractiveShell, ns: dict[str, Any], workspace: Workspace,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Crossed on the first version: start on stdout, middle on stderr, end on stdout. The
    two-piece split was handled; with three, stdout showed start+end and stderr the middle."""
    monkeypatch.setenv("TRAIN_TOKEN", SECRET)
    train(shell, "--secret TRAIN_TOKEN", """
import os, sys, time
t = os.environ["TRAIN_TOKEN"]
for stream, piece in ((sys.stdout, "log " + t[:6]), (sys.stderr, t[6:12]),
                      (sys.stdout, t[12:] + " done\\n"), (sys.stderr, t[:4]),
                      (sys.stdout, t[4:9]), (sys.stderr, t[9:] + "\\n")):
    stream.write(piece)
    stream.flush()
    time.sleep(0.3)  # each piece its own message
""")
    out = capsys.readouterr()
    shown = out.out + out.err
    for size in (6, 5):  # no piece of the secret that another piece would complete
        assert not any(SECRET[i:i + size] in shown for i in range(len(SECRET) - size + 1)), shown
    assert shown.count("[REDACTED:TRAIN_TOKEN]") == 2, shown
