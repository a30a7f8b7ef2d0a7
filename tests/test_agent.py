"""The local agent: kernels without a Jupyter server sign and record through it (issue 10.1).

A real agent process (passphrase through a pipe, never an environment
variable) and a real kernel started by jupyter_client with no passphrase and
`in_kernel = false`: `%%secure_train` (bwrap) records its run and `%sign_model`
signs, both through the agent, and the records verify.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from jupyter_client.blocking import BlockingKernelClient
from jupyter_client.manager import KernelManager
from test_server_signing import _run
from test_server_vault import _drain

from securenb.core.attest import SLSA_PROVENANCE_PREDICATE
from securenb.core.workspace import Workspace
from securenb.isolation.detect import check_bwrap
from securenb.signing.remote import agent_socket
from securenb.signing.service import verify_files

PASSPHRASE = "agent passphrase"  # a test-only passphrase
CLI = [sys.executable, "-c", "from securenb.cli.main import main; main()"]


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if "PASSPHRASE" not in k}


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    runtime = tempfile.mkdtemp(prefix="snb-")  # short: a socket path has 108 bytes at most
    monkeypatch.setenv("XDG_RUNTIME_DIR", runtime)
    root = tmp_path / "project"
    Workspace.init(root, PASSPHRASE)
    (root / "securenb.toml").write_text("[signing]\nin_kernel = false\n")
    yield root
    shutil.rmtree(runtime, ignore_errors=True)


def start_agent(root: Path, *args: str) -> subprocess.Popen[bytes]:
    agent = subprocess.Popen([*CLI, "-C", str(root), "agent", "start", "--passphrase-fd", "0",
                              *args], stdin=subprocess.PIPE, env=_env(),
                             stderr=subprocess.PIPE)
    assert agent.stdin is not None
    agent.stdin.write(PASSPHRASE.encode() + b"\n")
    agent.stdin.close()
    sock = agent_socket(root)
    deadline = time.monotonic() + 60
    while not sock.is_socket():
        assert agent.poll() is None, agent.stderr.read() if agent.stderr else ""
        assert time.monotonic() < deadline, "the agent did not start"
        time.sleep(0.05)
    return agent


@pytest.fixture
def agent(project: Path) -> Iterator[subprocess.Popen[bytes]]:
    proc = start_agent(project)
    yield proc
    proc.terminate()
    proc.wait(timeout=30)


def test_agent_holds_no_passphrase_where_others_can_read(project: Path,
                                                         agent: subprocess.Popen[bytes]) -> None:
    sock = agent_socket(project)
    assert oct(sock.parent.stat().st_mode & 0o777) == "0o700"
    assert PASSPHRASE.encode() not in Path(f"/proc/{agent.pid}/environ").read_bytes()
    assert PASSPHRASE.encode() not in Path(f"/proc/{agent.pid}/cmdline").read_bytes()


@pytest.fixture
def agent_kernel(project: Path, agent: subprocess.Popen[bytes]) -> Iterator[BlockingKernelClient]:
    """A kernel with no server and no passphrase: it signs through the workspace's agent."""
    manager = KernelManager(kernel_name="python3")
    manager.start_kernel(cwd=str(project), env={**_env(),
                                                 "XDG_RUNTIME_DIR": os.environ["XDG_RUNTIME_DIR"]})
    client = manager.blocking_client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=120)
        _drain(client)
        yield client
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


@pytest.mark.skipif(not check_bwrap().available, reason=check_bwrap().detail)
def test_kernel_trains_and_signs_through_the_agent(project: Path,
                                                   agent_kernel: BlockingKernelClient) -> None:
    client = agent_kernel
    out = _run(client, "import os\nprint(sorted(k for k in os.environ if 'PASS' in k))\n"
                       "%load_ext securenb\nimport numpy as np\nx = np.arange(4.0)\n")
    assert out[0] == ("stream", {"name": "stdout", "text": "[]\n"}), out
    out = _run(client, "%%secure_train --inputs x --outputs w\nw = x * 2\n")
    assert out[-1] == ("reply", {"status": "ok"}), out
    out = _run(client, "%sign_model outputs/variables/w.npy\n"
                       "get_ipython().magics_manager.registry['SecureTrainMagics']"
                       ".trainer.flush()\n")
    assert out[-1] == ("reply", {"status": "ok"}), out
    ws = Workspace(project)
    run = ws.store.list_runs(limit=1)[0]
    assert run.provenance is not None
    _, statement = ws.load_attestation(run.provenance)
    assert statement["predicateType"] == SLSA_PROVENANCE_PREDICATE
    release = project / "release.pub"
    release.write_bytes(ws.keystore.export_public("release"))
    result = verify_files(project / "outputs" / "variables" / "w.npy", keys=[str(release)])
    assert result.verified, result.lines()
    actions = [r.entry.action for r in ws.audit_log.tail(50)]
    assert "secure_train.run" in actions and "model.sign" in actions, actions


def test_agent_locks_after_its_idle_time(project: Path) -> None:
    proc = start_agent(project, "--idle", "1")
    assert proc.wait(timeout=60) == 0
    assert not agent_socket(project).exists()


def test_another_user_cannot_reach_the_agent(project: Path,
                                             agent: subprocess.Popen[bytes]) -> None:
    probe = ("import socket, sys\ns = socket.socket(socket.AF_UNIX)\n"
             "try:\n    s.connect(sys.argv[1]); print('connected')\n"
             "except OSError as e:\n    print('refused', e.errno)\n")
    out = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                          sys.executable, "-c", probe, str(agent_socket(project))],
                         capture_output=True, text=True, check=True, cwd="/")
    assert out.stdout.startswith("refused"), out.stdout


def test_cli_signs_through_the_agent_without_a_passphrase(project: Path,
                                                          agent: subprocess.Popen[bytes]) -> None:
    (project / "model.bin").write_bytes(b"weights")
    out = subprocess.run([*CLI, "sign", "model.bin", "--json"], cwd=project, env=_env(),
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert '"via": "agent"' in out.stdout  # signed by the agent's signer, not this process
    release = project / "release.pub"
    release.write_bytes(Workspace(project).keystore.export_public("release"))
    assert verify_files(project / "model.bin", keys=[str(release)]).verified
