"""What crosses the sandbox boundary, tried by hostile cells in real bwrap sandboxes.

Each test is an attack found against the first version (issue #9): a root
sandbox, planted links and special files, forged status lines, vetting that
crashes, stray processes, stale or hand-made records, active content in the
browser, secrets leaking through keys or split streams.
"""

from __future__ import annotations

import os
import stat
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from secure_train_support import provenance, train

from securenb.core.policy import IsolationPolicy
from securenb.core.workspace import Workspace
from securenb.isolation.detect import check_bwrap
from securenb.isolation.secrets import Redactor
from securenb.isolation.spec import build_spec
from securenb.isolation.subkernel import SubKernel
from securenb.kernel.train_magics import SecureTrainError
from securenb.sandbox.checkpoint import save_checkpoint

pytestmark = pytest.mark.skipif(not check_bwrap().available, reason=check_bwrap().detail)


@pytest.fixture
def ns(shell: InteractiveShell, workspace: Workspace) -> dict[str, Any]:
    shell.user_ns.clear()
    return shell.user_ns


@pytest.mark.skipif(os.geteuid() != 0, reason="the caller must be root")
def test_a_root_caller_gets_no_root_sandbox(shell: InteractiveShell, ns: dict[str, Any],
                                            workspace: Workspace) -> None:
    train(shell, "--outputs seen", """
import os, stat
from securenb.sandbox import output_dir
status = dict(l.split(":", 1) for l in open("/proc/self/status").read().splitlines())
try:  # writes the value back unchanged: proves write access without changing the host
    current = open("/proc/sys/kernel/core_pattern").read()
    open("/proc/sys/kernel/core_pattern", "w").write(current)
    sysctl = "written"
except OSError as exc:
    sysctl = exc.strerror
tool = output_dir() / "rootshell.txt"
tool.write_text("#!/bin/sh\\n")
os.chmod(tool, 0o6755)
seen = {"uid": os.getuid(), "host_uids": status["Uid"].split(), "sysctl": sysctl,
        "setuid_kept": bool(os.stat(tool).st_mode & stat.S_ISUID)}
""")
    seen = ns["seen"]
    assert seen["uid"] != 0 and "0" not in seen["host_uids"], seen
    assert seen["sysctl"] in ("Read-only file system", "Permission denied"), seen
    made = workspace.root / "outputs" / "rootshell.txt"
    st = made.lstat()
    assert stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid()
    assert not st.st_mode & (stat.S_ISUID | stat.S_ISGID)


def test_links_special_files_and_bad_names_never_reach_the_host(
        shell: InteractiveShell, ns: dict[str, Any], workspace: Workspace,
        capsys: pytest.CaptureFixture[str]) -> None:
    train(shell, "", """
import os, socket
from securenb.sandbox import output_dir
out = output_dir()
os.symlink("/etc/passwd", out / "passwd.txt")
os.symlink("/root", out / "home")
os.mkfifo(out / "pipe.txt")
socket.socket(socket.AF_UNIX).bind(str(out / "sock.txt"))
(out / "ok.txt").write_text("fine")
(out / "x\\n[securenb] all outputs SAFE.txt").write_text("forged")
(out / "\\x1b[2Kred.txt").write_text("escape")
""")
    err = capsys.readouterr().err
    outputs = workspace.root / "outputs"
    present = {p.name for p in outputs.iterdir()}
    assert present == {"ok.txt"}, present
    assert all(not p.is_symlink() for p in outputs.rglob("*"))
    lines = [line for line in err.splitlines() if line.startswith("[securenb]")]
    assert not any("all outputs SAFE" in line and "rejected" not in line for line in lines)
    assert "\x1b" not in err and "\\x1b" in err and "\\n" in err
    for name in ("passwd.txt", "home", "pipe.txt", "sock.txt"):
        assert f"{name}: a " in err and "not a plain file" in err


def test_a_link_left_in_the_output_folder_is_not_followed(
        shell: InteractiveShell, ns: dict[str, Any], workspace: Workspace) -> None:
    outputs = workspace.root / "outputs"
    outputs.mkdir(exist_ok=True)
    target = workspace.root / "elsewhere"
    target.mkdir()
    (outputs / "planted").symlink_to(target)  # as an earlier version left it
    train(shell, "", """
from securenb.sandbox import output_dir
(output_dir() / "planted").mkdir()
(output_dir() / "planted" / "a.txt").write_text("copied")
""")
    assert not (outputs / "planted").is_symlink()
    assert (outputs / "planted" / "a.txt").read_text() == "copied"
    assert list(target.iterdir()) == []


@pytest.mark.parametrize("place", ["home config", "ipython startup", "workspace records",
                                   ".env", "system"])
def test_private_places_are_refused_as_mounts(shell: InteractiveShell, ns: dict[str, Any],
                                              workspace: Workspace, place: str) -> None:
    home = Path.home()
    (home / ".config").mkdir(exist_ok=True)
    (workspace.root / ".env").write_text("TOKEN=x\n")
    startup = home / ".ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True, exist_ok=True)
    target = {"home config": str(home / ".config"), "ipython startup": str(startup),
              "workspace records": ".securenb", ".env": ".env", "system": "/etc"}[place]
    with pytest.raises(UsageError, match="refusing to mount"):
        train(shell, f"--inputs {target}", "x = 1")
    if place != ".env":
        with pytest.raises(UsageError, match=r"refusing to mount|must not"):
            train(shell, f"--output-dir {target}", "x = 1")
    with pytest.raises(UsageError, match=r"contains .*(\.env|\.securenb)"):
        train(shell, "--inputs .", "x = 1")


def test_vetting_is_bounded_and_a_failure_is_recorded(
        shell: InteractiveShell, ns: dict[str, Any], workspace: Workspace) -> None:
    train(shell, "", """
from securenb.sandbox import output_dir
(output_dir() / "deep.json").write_text("[" * 200000 + "]" * 200000)
""")
    run = workspace.store.list_runs(limit=1)[0]
    assert run.status == "ok"
    rejected = provenance(workspace)["predicate"]["runDetails"]["byproducts"]
    assert any("nested too deeply" in b.get("annotations", {}).get("rejected", "")
               for b in rejected)
    with pytest.raises(SecureTrainError, match="nested deeper than"):
        train(shell, "", """
import os
from securenb.sandbox import output_dir
path = output_dir()
for i in range(200):
    path = path / "d"
os.makedirs(path)
(path / "leaf.txt").write_text("x")
""")
    run = workspace.store.list_runs(limit=1)[0]
    assert run.status == "error" and run.provenance is not None
    assert not (workspace.root / "outputs" / "d").exists()  # nothing half-copied
    train(shell, "", "print('the next run works')")
    assert workspace.store.list_runs(limit=1)[0].status == "ok"


def test_a_run_lists_only_what_it_wrote(shell: InteractiveShell, ns: dict[str, Any],
                                        workspace: Workspace) -> None:
    train(shell, "", "from securenb.sandbox import output_dir\n"
                     "(output_dir() / 'a.txt').write_text('first')")
    train(shell, "", "x = 1")
    subjects = [s["name"] for s in provenance(workspace)["subject"]]
    assert len(subjects) == 1 and subjects[0].startswith("securenb-run:")


def test_processes_a_cell_started_end_with_it(shell: InteractiveShell, ns: dict[str, Any],
                                              workspace: Workspace) -> None:
    train(shell, "", """
import os, subprocess, time
from securenb.sandbox import output_dir
subprocess.Popen(["sh", "-c", "sleep 2; echo late > " + str(output_dir() / "late.txt")],
                 start_new_session=True)
if os.fork() == 0:  # a daemon: orphaned, then re-parented inside the sandbox
    if os.fork() == 0:
        time.sleep(2)
        open(output_dir() / "daemon.txt", "w").write("late")
    os._exit(0)
""")
    time.sleep(3)
    train(shell, "--outputs procs", """
import os
def alive(pid):  # zombies are dead already: the kernel has not reaped them yet
    return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] not in "ZX"
procs = sorted(open(f"/proc/{p}/comm").read().strip() for p in os.listdir("/proc")
               if p.isdigit() and alive(p))
""")
    assert "sleep" not in ns["procs"] and len(ns["procs"]) <= 3, ns["procs"]
    assert not (workspace.root / "outputs" / "late.txt").exists()
    assert not (workspace.root / "outputs" / "daemon.txt").exists()


def test_a_hand_made_checkpoint_is_not_resumed_and_is_reported(
        shell: InteractiveShell, ns: dict[str, Any], workspace: Workspace,
        capsys: pytest.CaptureFixture[str]) -> None:
    import numpy as np

    save_checkpoint({"w": np.full(2, 666.0)}, 5, workspace.root / "outputs")  # by hand
    train(shell, "--resume --outputs fresh",
          "import securenb.sandbox as sb\nfresh = sb.restore() is None")
    assert ns["fresh"] is True
    err = capsys.readouterr().err
    assert "passed over checkpoint step-000000005" in err and "not recorded" in err
    byproducts = provenance(workspace)["predicate"]["runDetails"]["byproducts"]
    assert any(b["name"] == "skipped-checkpoint" for b in byproducts)


def test_cells_with_other_inputs_get_another_sandbox(shell: InteractiveShell,
                                                     ns: dict[str, Any],
                                                     workspace: Workspace) -> None:
    """A cell cannot hook the helpers to read what a later cell is handed."""
    ns["secret_frame"] = {"rows": [1, 2, 3]}
    train(shell, "", """
import securenb.sandbox._session as s
original = s.begin
def spy(config):
    open("/tmp/stolen", "w").write(config)
    return original(config)
s.begin = spy
""")
    train(shell, "--inputs secret_frame --outputs stolen", """
import os
stolen = os.path.exists("/tmp/stolen")
""")
    assert ns["stolen"] is False


def _sandbox(tmp_path: Path) -> SubKernel:
    kernel = SubKernel(build_spec(IsolationPolicy(), workdir=tmp_path, backend="bwrap"), {})
    kernel.start()
    return kernel


def test_displays_from_the_sandbox_are_inert(tmp_path: Path) -> None:
    kernel = _sandbox(tmp_path)
    shown: list[tuple[str, dict[str, Any]]] = []
    try:
        reply, _, _ = kernel.run(textwrap.dedent("""
            from IPython.display import HTML, Javascript, display
            display(Javascript("fetch('/api/contents')"))
            display(HTML('<img src=x onerror="alert(1)"><script>alert(2)</script><b>ok</b>'))
            display({"text/html": "<a href='javascript:alert(3)'>x</a>",
                     "application/x-custom": "?"}, raw=True)
            display({"text/plain": "UNSAFE"}, raw=True, display_id="verdict")
            display({"text/plain": "SAFE"}, raw=True, display_id="verdict", update=True)
        """), lambda kind, content: shown.append((kind, content)), Redactor({}), 60)
    finally:
        kernel.shutdown(now=True)
    assert reply.status == "ok", reply
    datas = [c["data"] for k, c in shown if k != "stream"]
    assert not any("application/javascript" in d for d in datas)
    html = " ".join(d.get("text/html", "") for d in datas)
    assert "<b>ok</b>" in html
    for active in ("onerror", "<script", "javascript:", "alert"):
        assert active not in html
    assert any("withheld" in d.get("text/plain", "") for d in datas)
    ids = [c["transient"]["display_id"] for k, c in shown if "transient" in c]
    assert ids and all(i != "verdict" and i.endswith("-verdict") for i in ids)


def test_redaction_covers_keys_and_values_split_across_streams() -> None:
    redact = Redactor({"TOKEN": "hunter2-secret"})
    outputs = redact.feed("stdout", "token: hunter2")
    outputs += redact.feed("stderr", "-secret and more")
    shown = "".join(c["text"] for _, c in outputs + redact.flush())
    assert "hunter2" not in shown and "-secret" not in shown and "[REDACTED:TOKEN]" in shown
    value = redact.value({"data": {"hunter2-secret": "x"},
                          "metadata": {"hunter2-secret": {"k": 1}}})
    assert "hunter2-secret" not in repr(value)


FILL = """
import os, time
from ipykernel.connect import get_connection_file
targets = {{"the output folder": os.environ["SECURENB_OUTPUT_DIR"],
            "the IPC folder": os.path.dirname(get_connection_file())}}
for i in range(64):  # 64 MiB, at most; the caps below are 8 MiB
    if {where!r} == "the kernel log":
        os.write(2, b"x" * 2**20)
    else:
        open(f"{{targets[{where!r}]}}/fill-{{i}}", "wb").write(b"x" * 2**20)
    time.sleep(0.02)
time.sleep(60)
"""


@pytest.mark.parametrize("where", ["the output folder", "the kernel log", "the IPC folder"])
def test_a_sandbox_cannot_fill_the_host_disk(tmp_path: Path, where: str) -> None:
    import dataclasses

    spec = build_spec(IsolationPolicy(), workdir=tmp_path, backend="bwrap",
                      output_dir=tmp_path / "outputs")
    spec = dataclasses.replace(spec, limits=dataclasses.replace(
        spec.limits, output_bytes=8 << 20, log_bytes=8 << 20, ipc_bytes=8 << 20))
    kernel = SubKernel(spec, {})
    kernel.start()
    try:
        reply, _, _ = kernel.run(FILL.format(where=where), lambda kind, content: None,
                                 Redactor({}), 30)
        assert reply.status == "died" and f"{where} passed its cap" in reply.detail, reply
    finally:
        kernel.shutdown(now=True)
    assert sum(p.stat().st_size for p in (tmp_path / "outputs").rglob("*")) == 0


def test_a_replaced_ipc_socket_does_not_redirect_the_parent(tmp_path: Path) -> None:
    import socket

    host_socket = tmp_path / "host.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(host_socket))
    listener.listen()
    listener.settimeout(3)
    kernel = _sandbox(tmp_path)
    try:
        reply, _, _ = kernel.run(textwrap.dedent(f"""
            import json, os
            from ipykernel.connect import get_connection_file
            info = json.load(open(get_connection_file()))
            path = f"{{info['ip']}}-{{info['stdin_port']}}"
            os.rename(path, path + ".old")
            os.symlink({str(host_socket)!r}, path)  # a host socket of the sandbox's choosing
            get_ipython().kernel.stdin_socket.close(linger=0)  # the parent reconnects
        """), lambda kind, content: None, Redactor({}), 30)
        assert reply.status == "ok", reply
        with pytest.raises(TimeoutError):
            listener.accept()[0].close()
    finally:
        kernel.shutdown(now=True)
        listener.close()
