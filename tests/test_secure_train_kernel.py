"""%%secure_train through a real Jupyter kernel: streaming, interrupt, timeout, crashes.

The parent is a normal ipykernel started by jupyter_client that loads the
magic; it must survive whatever happens in its sandboxes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

from securenb.core.workspace import Workspace
from securenb.isolation.detect import check_bwrap

pytestmark = pytest.mark.skipif(not check_bwrap().available, reason=check_bwrap().detail)

PASSPHRASE = "kernel-test passphrase"  # test-only
SECRET = "tok-" + "9" * 20
LOAD = "%load_ext securenb.kernel.train_magics"


class Parent:
    def __init__(self, km: KernelManager, kc: BlockingKernelClient, root: Path) -> None:
        self.km, self.kc, self.root = km, kc, root

    def execute(self, code: str, timeout: float = 60,
                on_output: Any = None) -> tuple[dict[str, Any], list[tuple[float, str, Any]]]:
        seen: list[tuple[float, str, Any]] = []

        def hook(msg: dict[str, Any]) -> None:
            seen.append((time.monotonic(), msg["msg_type"], msg["content"]))
            if on_output is not None:
                on_output(msg)

        reply = self.kc.execute_interactive(code, timeout=timeout, output_hook=hook)
        return reply["content"], seen


def text_of(seen: list[tuple[float, str, Any]]) -> str:
    return "".join(c.get("text", "") for _, kind, c in seen if kind == "stream") + "".join(
        "\n".join(c.get("traceback", [])) for _, kind, c in seen if kind == "error")


@pytest.fixture(scope="module")
def parent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Parent]:
    root = tmp_path_factory.mktemp("kernelws")
    Workspace.init(root, PASSPHRASE)
    env = {**os.environ, "SECURENB_KEY_PASSPHRASE": PASSPHRASE, "TRAIN_TOKEN": SECRET}
    km = KernelManager(kernel_name="python3")
    km.start_kernel(cwd=str(root), env=env)
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=60)
    parent = Parent(km, kc, root)
    reply, _ = parent.execute(LOAD)
    assert reply["status"] == "ok"
    try:
        yield parent
    finally:
        kc.stop_channels()
        km.shutdown_kernel()  # graceful: the magic's atexit hook stops its sandboxes


def test_output_streams_live_and_rich_output_arrives(parent: Parent) -> None:
    reply, seen = parent.execute("""%%secure_train
import time
from IPython.display import HTML, display
print("first", flush=True)
display(HTML("<b>rich</b>"))
time.sleep(1.5)
print("second", flush=True)
""")
    assert reply["status"] == "ok", text_of(seen)
    first = next(t for t, kind, c in seen if kind == "stream" and "first" in c["text"])
    second = next(t for t, kind, c in seen if kind == "stream" and "second" in c["text"])
    assert second - first > 1.0  # the first line was shown while the cell was still running
    assert any(kind == "display_data" and c["data"].get("text/html") == "<b>rich</b>"
               for _, kind, c in seen)


def test_interrupt_stops_the_sandboxed_work(parent: Parent) -> None:
    ticks = parent.root / "outputs" / "ticks.txt"
    interrupted: list[float] = []

    def interrupt_on_first_tick(msg: dict[str, Any]) -> None:
        if msg["msg_type"] == "stream" and "tick" in msg["content"].get("text", "") and \
                not interrupted:
            interrupted.append(time.monotonic())
            parent.km.interrupt_kernel()

    reply, seen = parent.execute(f"""%%secure_train
import time
for i in range(300):
    with open({str(ticks)!r}, "a") as fh:
        fh.write("x")
    print("tick", i, flush=True)
    time.sleep(0.1)
""", on_output=interrupt_on_first_tick)
    assert interrupted and reply["status"] == "error" and reply["ename"] == "KeyboardInterrupt"
    assert time.monotonic() - interrupted[0] < 10
    size = ticks.stat().st_size
    time.sleep(0.5)
    assert ticks.stat().st_size == size < 100  # nothing runs any more
    reply, seen = parent.execute("%%secure_train\nprint('after interrupt')")
    assert reply["status"] == "ok" and "after interrupt" in text_of(seen)


def test_timeout_stops_the_work(parent: Parent) -> None:
    began = time.monotonic()
    reply, seen = parent.execute("%%secure_train --timeout 2\nwhile True:\n    pass")
    assert reply["status"] == "error" and "timed out after 2 s" in text_of(seen)
    assert time.monotonic() - began < 10


def test_timeout_kills_a_cell_that_ignores_interrupts(parent: Parent) -> None:
    began = time.monotonic()
    reply, seen = parent.execute("""%%secure_train --timeout 2
import signal
signal.signal(signal.SIGINT, signal.SIG_IGN)
while True:
    pass
""")
    assert reply["status"] == "error"
    assert "did not stop in time and was killed" in text_of(seen)
    assert time.monotonic() - began < 15
    reply, seen = parent.execute("%%secure_train\nprint('restarted')")
    assert reply["status"] == "ok" and "restarted" in text_of(seen)


def test_a_crash_inside_leaves_the_parent_alive(parent: Parent) -> None:
    reply, seen = parent.execute("""%%secure_train
import os, signal
os.kill(os.getpid(), signal.SIGSEGV)
""")
    assert reply["status"] == "error" and "the sandbox died" in text_of(seen)
    assert "SIGSEGV" in text_of(seen)
    reply, seen = parent.execute("print(6 * 7)")
    assert reply["status"] == "ok" and "42" in text_of(seen)
    reply, seen = parent.execute("%%secure_train\nprint('next run')")
    assert reply["status"] == "ok" and "next run" in text_of(seen)


def test_a_secret_printed_by_a_cell_is_absent_from_the_saved_notebook(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Workspace.init(tmp_path, PASSPHRASE)
    monkeypatch.setenv("SECURENB_KEY_PASSPHRASE", PASSPHRASE)
    monkeypatch.setenv("TRAIN_TOKEN", SECRET)
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell(LOAD),
        nbformat.v4.new_code_cell(
            "%%secure_train --secret TRAIN_TOKEN\nimport os\n"
            "print('token is', os.environ['TRAIN_TOKEN'])\n"
            "raise RuntimeError('failed with ' + os.environ['TRAIN_TOKEN'])"),
    ])
    client = NotebookClient(nb, kernel_name="python3", timeout=120, allow_errors=True,
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    saved = tmp_path / "trained.ipynb"
    nbformat.write(nb, saved)
    text = saved.read_text()
    assert SECRET not in text
    assert "token is [REDACTED:TRAIN_TOKEN]" in text
    assert "failed with [REDACTED:TRAIN_TOKEN]" in text
