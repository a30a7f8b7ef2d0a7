"""In a real browser: active content emitted inside a sandbox does not run in JupyterLab.

JupyterLab runs the JavaScript and HTML of outputs produced in the user's session
with the user's rights. A real JupyterLab server and Debian's Chromium (through
Playwright) run a notebook whose plain cell emits JavaScript (the control: it
must run, or the test could not see anything) and whose ``%%secure_train`` cell
emits JavaScript, an inline event handler, a ``javascript:`` link and an update
of the control's display: none of them may act.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

from securenb.core.workspace import Workspace
from securenb.isolation.detect import check_bwrap

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = [
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="apt-get install chromium"),
    pytest.mark.skipif(not check_bwrap().available, reason=check_bwrap().detail),
]
PASSPHRASE = "browser test passphrase"

CONTROL = """\
from IPython.display import Javascript, display
display(Javascript("window.__control = 1"))
display({"text/plain": "VERDICT: UNSAFE"}, raw=True, display_id="verdict")
"""
SANDBOXED = """\
%%secure_train
from IPython.display import HTML, Javascript, display
display(Javascript("window.__sandbox_js = 1"))
display(HTML('<img src="data:," onerror="window.__sandbox_onerror = 1">'
             '<svg onload="window.__sandbox_svg = 1"></svg>'
             '<a id="sandbox-link" href="javascript:window.__sandbox_link = 1">link</a>'
             '<script>window.__sandbox_script = 1</script><b>SANDBOX HTML</b>'))
display({"text/plain": "VERDICT: SAFE"}, raw=True, display_id="verdict", update=True)
print("SANDBOX DONE")
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[str]:
    pytest.importorskip("jupyterlab")
    Workspace.init(tmp_path, PASSPHRASE)
    nb = nbformat.v4.new_notebook(cells=[
        # the server keeps passphrases out of kernels; recording a run in a kernel is issue
        # #10's (a signer outside kernels). This test is about rendering: the kernel is given
        # the test workspace's passphrase here.
        nbformat.v4.new_code_cell(f"import os\nos.environ['SECURENB_KEY_PASSPHRASE'] = "
                                  f"{PASSPHRASE!r}\n%load_ext securenb"),
        nbformat.v4.new_code_cell(CONTROL),
        nbformat.v4.new_code_cell(SANDBOXED),
    ])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, tmp_path / "attack.ipynb")

    token, port = uuid.uuid4().hex, _free_port()
    env = dict(os.environ)
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
         "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={tmp_path}"],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.5)
        yield f"{base}/lab/tree/attack.ipynb?token={token}"
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_javascript_and_event_handlers_from_a_sandbox_do_not_run(lab: str) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"])
        try:
            page = browser.new_page()
            page.goto(lab)
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
            page.wait_for_selector(".jp-Spinner", state="detached", timeout=60_000)
            page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']",
                                   timeout=60_000)
            page.click(".lm-MenuBar-itemLabel:text-is('Run')")
            page.click(".lm-Menu-itemLabel:text-is('Run All Cells')")
            with contextlib.suppress(sync_api.TimeoutError):  # "Select Kernel", if asked
                page.click(".jp-Dialog .jp-mod-accept", timeout=5_000)
            output = ".jp-OutputArea-output"  # not the cells' source, which has the same text
            page.wait_for_selector(f"{output}:has-text('SANDBOX DONE')", timeout=120_000)
            page.wait_for_selector(f"{output}:has-text('SANDBOX HTML')", timeout=30_000)
            link = page.query_selector("#sandbox-link")
            if link is not None:
                link.click()
            page.wait_for_timeout(1000)
            seen = page.evaluate("""() => ({control: window.__control,
                js: window.__sandbox_js, onerror: window.__sandbox_onerror,
                svg: window.__sandbox_svg, link: window.__sandbox_link,
                script: window.__sandbox_script})""")
            text = " ".join(e.inner_text() for e in page.query_selector_all(output))
        finally:
            browser.close()
    assert seen["control"] == 1, seen  # JavaScript from an ordinary cell does run here
    assert all(seen[k] is None for k in ("js", "onerror", "svg", "link", "script")), seen
    assert "VERDICT: UNSAFE" in text  # the sandbox could not rewrite the host's display
