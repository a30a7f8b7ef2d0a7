"""The server as a vault, through a real `jupyter server` with the extension (issues 10.1, 11.2).

- A cell in a kernel of the server must not find the passphrase anywhere it
  can read: its own environment, the server's original environment block
  (/proc/<server>/environ) or command line.
- In JupyterLab's own path (a kernel started through the REST API, no
  passphrase in the kernel), `%%secure_train` in bwrap records its run and
  `%sign_model` signs, both through the server, and the records verify.
"""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.blocking import BlockingKernelClient
from test_server_signing import PASSPHRASE, Server, _run
from test_server_signing import server as server  # the module-scoped real server

from securenb.core.attest import SLSA_PROVENANCE_PREDICATE
from securenb.core.audit import verify_log
from securenb.core.workspace import Workspace
from securenb.isolation.detect import check_bwrap
from securenb.signing.service import verify_files


@pytest.fixture
def kernel(server: Server) -> Iterator[BlockingKernelClient]:
    kernel_id = server.call("POST", "/api/kernels", {"name": "python3"})["id"]
    client = BlockingKernelClient()
    client.load_connection_file(str(server.runtime / f"kernel-{kernel_id}.json"))
    client.start_channels()
    client.wait_for_ready(timeout=120)
    _drain(client)
    yield client
    client.stop_channels()


def _drain(client: BlockingKernelClient) -> None:
    """Drop the replies wait_for_ready may leave (it can send kernel_info more than once)."""
    for get in (client.get_shell_msg, client.get_iopub_msg):
        while True:
            try:
                get(timeout=0.5)
            except queue.Empty:
                break


def _stdout(out: list[tuple[str, dict[str, Any]]]) -> str:
    return "".join(c["text"] for kind, c in out if kind == "stream" and c["name"] == "stdout")


def test_kernel_cannot_read_the_passphrase_through_proc(server: Server,
                                                        kernel: BlockingKernelClient) -> None:
    out = _run(kernel, f"""
import os
import queue
secret = {PASSPHRASE!r}.encode()
server = int(os.environ["JPY_PARENT_PID"])
found = [k for k, v in os.environ.items() if secret in v.encode()]
for name in ("environ", "cmdline"):
    try:
        if secret in open(f"/proc/{{server}}/{{name}}", "rb").read():
            found.append(name)
    except OSError:
        pass
print("found:", found)
""")
    assert _stdout(out) == "found: []\n", out


_AS_NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
_REPO = Path(__file__).resolve().parent.parent
_HOLDER = """
import sys, time
from securenb.core import vault
if sys.argv[1] == "vault":
    vault.scrub_environment(["SECURENB_KEY_PASSPHRASE"])
    vault.make_undumpable()
else:  # what main did: os.environ only
    import os; os.environ.pop("SECURENB_KEY_PASSPHRASE")
print("ready", flush=True)
time.sleep(120)
"""
_READER = """
import sys
pid, secret = sys.argv[1], sys.argv[2].encode()
found = []
try:
    if secret in open(f"/proc/{pid}/environ", "rb").read():
        found.append("environ")
except OSError as exc:
    found.append(f"environ refused ({exc.errno})")
try:
    open(f"/proc/{pid}/mem", "rb").close()
    found.append("mem opened")
except OSError as exc:
    found.append(f"mem refused ({exc.errno})")
print(found)
"""


def _read_as_same_user(mode: str) -> str:
    """A holder and a reader, both the same unprivileged user (no CAP_SYS_PTRACE)."""
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(_REPO),
           "SECURENB_KEY_PASSPHRASE": PASSPHRASE}
    holder = subprocess.Popen([*_AS_NOBODY, sys.executable, "-c", _HOLDER, mode], env=env,
                              cwd=_REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "ready\n"
        reader = subprocess.run([*_AS_NOBODY, sys.executable, "-c", _READER, str(holder.pid),
                                 PASSPHRASE], env={"PATH": os.environ["PATH"]}, cwd=_REPO,
                                capture_output=True, text=True, check=True, timeout=60)
        return reader.stdout.strip()
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="no setpriv")
def test_same_user_cannot_read_the_vault_process() -> None:
    """Root reads everything; the boundary is for a same-user process, so both run as nobody."""
    assert _read_as_same_user("os.environ") == "['environ', 'mem opened']"  # the hole
    assert _read_as_same_user("vault") == "['environ refused (13)', 'mem refused (13)']"


@pytest.mark.skipif(not check_bwrap().available, reason=check_bwrap().detail)
def test_secure_train_and_sign_model_through_the_server(server: Server,
                                                        kernel: BlockingKernelClient) -> None:
    out = _run(kernel, f"""
import os
import queue
os.chdir({str(server.root)!r})
print(sorted(k for k in os.environ if 'PASSPHRASE' in k))
%load_ext securenb
import numpy as np
x = np.arange(4.0)
""")
    assert _stdout(out) == "[]\n", out
    out = _run(kernel, "%%secure_train --inputs x --outputs w\nw = x * 2\n")
    assert out[-1] == ("reply", {"status": "ok"}), out
    out = _run(kernel, "%sign_model outputs/variables/w.npy\n")
    assert out[-1] == ("reply", {"status": "ok"}), out
    out = _run(kernel, "get_ipython().magics_manager.registry['SecureTrainMagics']"
                       ".trainer.flush()\nprint('flushed')")  # the run's records are written
    assert "flushed" in _stdout(out), out

    ws = Workspace(server.root)
    run = ws.store.list_runs(limit=1)[0]
    assert run.status == "ok" and run.provenance is not None
    _, statement = ws.load_attestation(run.provenance)
    assert statement["predicateType"] == SLSA_PROVENANCE_PREDICATE
    names = {s["name"] for s in statement["subject"]}
    assert "outputs/variables/w.npy" in names
    # the recipient's view: the files and the public keys only
    release = server.root / "release.pub"
    release.write_bytes(ws.keystore.export_public("release"))
    result = verify_files(server.root / "outputs" / "variables" / "w.npy", keys=[str(release)])
    assert result.verified, result.lines()
    verify_log(ws.dir / "audit", ws.public_key())
    actions = [e.entry.action for e in ws.audit_log.tail(50)]
    assert "secure_train.run" in actions and "model.sign" in actions, actions


def test_a_kernel_cannot_get_the_record_key_to_sign_a_foreign_statement(
        server: Server) -> None:
    """A kernel may ask for records (schema-checked securenb predicates, SLSA provenance),
    never for, e.g., a model-signing statement signed by the record key."""
    import json as json_

    from securenb.errors import SecurenbError
    from securenb.signing.remote import KernelIdentity, RemoteSigner

    kernel_id = server.call("POST", "/api/kernels", {"name": "python3"})["id"]
    identity = KernelIdentity.from_connection_file(server.runtime / f"kernel-{kernel_id}.json")
    discovery = json_.loads((server.runtime / f"securenb-signer-{server.pid}.json").read_text())
    remote = RemoteSigner(Path(discovery["socket"]), identity)
    statement = {"_type": "https://in-toto.io/Statement/v1",
                 "subject": [{"name": "model.bin", "digest": {"sha256": "ab" * 32}}],
                 "predicateType": "https://model_signing/signature/v1.0", "predicate": {}}
    with pytest.raises(SecurenbError, match="not a securenb record"):
        remote.attest(server.root, statement)
    with pytest.raises(SecurenbError, match="not the workspace of this server"):
        remote.audit(server.root.parent, "artifact.record", "sha256:" + "ab" * 32, {})
