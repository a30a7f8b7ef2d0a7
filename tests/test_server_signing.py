"""Server-side signing with a real jupyter_server (subprocess) and a real kernel it starts.

The key is unlocked in the server only: the kernel's environment has no
passphrase, its %sign_model goes over the signer socket, and the signature
attestation names the kernel that asked.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.blocking import BlockingKernelClient

from securenb.core.workspace import Workspace
from securenb.errors import SecurenbError
from securenb.signing import SIGNATURE_PREDICATE
from securenb.signing.remote import (
    HEADER_KERNEL,
    HEADER_MAC,
    HEADER_NONCE,
    HEADER_TIME,
    KernelIdentity,
    RemoteSigner,
    _UnixConnection,
    request_mac,
)
from securenb.signing.service import SignRequest

PASSPHRASE = "server-side passphrase"  # a test-only passphrase
TOKEN = "securenb-test-token"  # a test server's token


@dataclass
class Server:
    url: str
    root: Path
    runtime: Path
    pid: int

    def call(self, method: str, path: str, body: Any = None, token: str | None = TOKEN) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Authorization": f"token {token}"} if token else {}
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers=headers)
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def running_server(root: Path, runtime: Path, env: dict[str, str], log_path: Path
                   ) -> Iterator[Server]:
    """A real `jupyter server` with the securenb extension on ``root``, until the block ends."""
    port = _free_port()
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter_server", f"--ServerApp.port={port}",
         "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={TOKEN}",
         f"--ServerApp.root_dir={root}", "--ServerApp.open_browser=False", "--allow-root",
         "--ServerApp.jpserver_extensions=securenb.server=True"],
        env=env, cwd=root, stdout=log, stderr=subprocess.STDOUT)
    srv = Server(f"http://127.0.0.1:{port}", root, runtime, proc.pid)
    deadline = time.monotonic() + 90
    while True:
        try:
            srv.call("GET", "/api/status")
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(log_path.read_text()) from None
            time.sleep(0.2)
    try:
        yield srv
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    base = tmp_path_factory.mktemp("server")
    root, runtime = base / "project", base / "runtime"
    (root / "models" / "m").mkdir(parents=True)
    (root / "models" / "m" / "weights.bin").write_bytes(b"w" * 10_000)
    Workspace.init(root, PASSPHRASE)
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(runtime), "SECURENB_KEY_PASSPHRASE": PASSPHRASE,
           "JUPYTER_CONFIG_DIR": str(base / "config"), "JUPYTER_DATA_DIR": str(base / "data"),
           "IPYTHONDIR": str(base / "ipython")}  # kernels share IPython's history: a secret
    # typed into a cell of another module's kernel would be in this module's kernels' memory
    with running_server(root, runtime, env, base / "server.log") as srv:
        yield srv
    assert not (runtime / f"securenb-signer-{srv.pid}.json").exists(), "discovery file left"


def test_rest_sign_and_verify(server: Server) -> None:
    signed = server.call("POST", "/securenb/api/sign", {"path": "models/m"})
    assert signed["via"] == "server" and signed["signature"] == str(server.root / "models/m.sig")
    verified = server.call("POST", "/securenb/api/verify", {"path": "models/m"})
    assert verified["verified"] is True, verified
    with pytest.raises(urllib.error.HTTPError) as info:
        server.call("POST", "/securenb/api/sign", {"path": "models/m"}, token=None)
    assert info.value.code == 403


def test_rest_refuses_what_is_outside_the_root(server: Server) -> None:
    for body, message in (({"path": "/etc/hostname"}, "outside the server's root folder"),
                          ({"path": "models/m", "key": "file:/etc/key.pem"},
                           "the server signs only with the workspace's key store keys"),
                          ({"path": "models/m", "nope": 1}, "unknown field")):
        with pytest.raises(urllib.error.HTTPError) as info:
            server.call("POST", "/securenb/api/sign", body)
        assert info.value.code == 400
        assert message in json.loads(info.value.read())["message"]


def _run(client: BlockingKernelClient, code: str) -> list[tuple[str, dict[str, Any]]]:
    """Outputs of ``code``, then ("reply", {"status": ...}) (what papermill stops on)."""
    msg_id = client.execute(code)
    out = []
    while True:
        msg = client.get_iopub_msg(timeout=120)
        if msg["msg_type"] in ("stream", "display_data", "error"):
            out.append((msg["msg_type"], msg["content"]))
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            break
    reply = client.get_shell_msg(timeout=60)
    assert reply["parent_header"]["msg_id"] == msg_id
    return [*out, ("reply", {"status": reply["content"]["status"]})]


@contextlib.contextmanager
def kernel_client(server: Server) -> Iterator[tuple[str, BlockingKernelClient]]:
    """A ready client of a kernel that ``server`` started over its REST API."""
    kernel_id = server.call("POST", "/api/kernels", {"name": "python3"})["id"]
    client = BlockingKernelClient()
    client.load_connection_file(str(server.runtime / f"kernel-{kernel_id}.json"))
    client.start_channels()
    try:
        client.wait_for_ready(timeout=120)
        yield kernel_id, client
    finally:
        client.stop_channels()


def test_kernel_signs_through_the_server(server: Server) -> None:
    with kernel_client(server) as (kernel_id, client):
        try:
            _signs_and_verifies(server, client)
        finally:
            (server.root / "models" / "m" / "weights.bin").write_bytes(b"w" * 10_000)
    ws = Workspace(server.root)
    records = ws.store.attestations_for(
        _sha256(server.root / "models" / "m.sig"), SIGNATURE_PREDICATE)
    _, statement = ws.load_attestation(records[0].envelope)
    assert statement["predicate"]["via"] == "server"
    assert statement["predicate"]["requester"] == {"kernel": kernel_id}


def _signs_and_verifies(server: Server, client: BlockingKernelClient) -> None:
    """%sign_model and %verify_model in the kernel: no passphrase there, tampering caught."""
    out = _run(client, "import os\n"
                       "print(sorted(k for k in os.environ if 'PASSPHRASE' in k))\n"
                       "from securenb.kernel.sign_magics import register\n"
                       "register(get_ipython())\n"
                       f"os.chdir({str(server.root)!r})\n"
                       "%sign_model models/m --hash blake3\n"
                       "%verify_model models/m\n")
    assert out[0] == ("stream", {"name": "stdout", "text": "[]\n"}), out  # no passphrase
    kinds = [(kind, sorted(content.get("data", {}))) for kind, content in out[1:]]
    widget = ["application/vnd.jupyter.widget-view+json", "text/html", "text/plain"]
    assert kinds == [("display_data", widget)] * 2 + [("reply", [])], out
    assert out[1][1]["data"]["text/plain"].startswith("signed model ")
    assert out[2][1]["data"]["text/plain"].startswith("VERIFIED model ")
    (server.root / "models" / "m" / "weights.bin").write_bytes(b"x" * 10_000)
    failed = _run(client, "%verify_model models/m")
    assert failed[-1] == ("reply", {"status": "error"}), failed
    assert failed[1][0] == "stream" and failed[1][1]["name"] == "stderr"
    assert "UsageError: verify_model: FAILED model" in failed[1][1]["text"]
    assert "weights.bin: content changed (blake3 signed" in failed[1][1]["text"]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_socket_refuses_strangers_and_replays(server: Server) -> None:
    discovery = json.loads((server.runtime / f"securenb-signer-{server.pid}.json").read_text())
    sock = Path(discovery["socket"])
    assert oct(sock.parent.stat().st_mode & 0o777) == "0o700"
    assert oct((server.runtime / f"securenb-signer-{server.pid}.json").stat().st_mode
               & 0o777) == "0o600"
    kernel_id = server.call("POST", "/api/kernels", {"name": "python3"})["id"]
    real = KernelIdentity.from_connection_file(server.runtime / f"kernel-{kernel_id}.json")
    request = SignRequest(str(server.root / "models" / "m"))
    for identity, message in ((KernelIdentity(kernel_id, b"guessed key"), "bad request signature"),
                              (KernelIdentity("no-such-kernel", real.key), "unknown kernel")):
        with pytest.raises(Exception, match=message):
            RemoteSigner(sock, identity).sign(request)
    assert RemoteSigner(sock, real).sign(request).via == "server"
    # the same request twice: the second is a replay
    body = json.dumps({"path": str(server.root / "models" / "m")}).encode()
    stamp, nonce = str(int(time.time())), "n" * 32
    headers = {HEADER_KERNEL: kernel_id, HEADER_TIME: stamp, HEADER_NONCE: nonce,
               HEADER_MAC: request_mac(real.key, kernel_id, "/v1/verify", stamp, nonce, body)}
    statuses = []
    for _ in range(2):
        connection = _UnixConnection(str(sock), 60)
        connection.request("POST", "/v1/verify", body=body, headers=headers)
        response = connection.getresponse()
        statuses.append((response.status, json.loads(response.read()).get("error")))
        connection.close()
    assert statuses[0][0] == 200 and statuses[1] == (403, "request nonce missing or replayed")


def test_kernel_of_a_server_without_the_extension_refuses(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path))
    kernel = KernelIdentity("k", b"key")
    assert RemoteSigner.discover(kernel, {}) is None  # a terminal IPython
    assert RemoteSigner.discover(kernel, {"JPY_PARENT_PID": "4242"}) is None  # papermill
    (tmp_path / "jpserver-4242.json").write_text("{}")
    with pytest.raises(SecurenbError, match="started by a Jupyter server without the securenb"):
        RemoteSigner.discover(kernel, {"JPY_PARENT_PID": "4242"})
