"""Dataset keys are released by the server, for the role of the kernel's user (issue #13).

A real `jupyter server` with the extension and RBAC on, kernels started and run
through its REST API and kernel websocket as named users (JupyterLab's path),
`%%secure_train --inputs data=x.enc` in a real bwrap sandbox. The KEK is in the
server's environment only (scrubbed before any kernel starts); the kernel asks
the server, which checks the user's roles against the dataset's manifest,
unwraps, and re-encrypts a copy into the sandbox's inbox under a one-time key.
Neither the dataset's data key nor the KEK may ever be in the kernel's memory.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shutil
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.session import Session
from jupyter_server.auth.identity import IdentityProvider, User
from test_server_kernel_memory import memory_contains
from test_server_signing import PASSPHRASE, TOKEN, Server, running_server
from tornado.httpclient import HTTPRequest
from tornado.web import RequestHandler
from tornado.websocket import websocket_connect

import securenb.data as data
from securenb.core.workspace import Workspace
from securenb.data.kek import LocalKek
from securenb.errors import SecurenbError
from securenb.isolation.detect import check_bwrap
from securenb.isolation.runtime import base_dir
from securenb.signing.remote import KernelIdentity, RemoteSigner

pytestmark = pytest.mark.skipif(not check_bwrap().available, reason=check_bwrap().detail)

USERS = {"trainer-token": "trainer-user", "analyst-token": "analyst-user",
         "runner-token": "runner-user", TOKEN: "watcher"}  # TOKEN: the start-up poll's
ROLES = {"trainer-user": ["scientist", "trainer"], "analyst-user": ["scientist", "analyst"],
         "runner-user": ["runner", "trainer"],  # a trainer without the decrypt permission
         "watcher": ["viewer"]}
PLAIN = b"age,score\n31,0.5\n47,0.25\n"
KEK_BYTES = os.urandom(32)  # random: a pattern such as range(32) is in every byte table
KEK = LocalKek(KEK_BYTES, "env:SECURENB_KEK")


class TokenUsers(IdentityProvider):
    """Test identity (loaded by the server process): ``token <name>-token`` is ``<name>-user``."""

    async def get_user_token(self, handler: RequestHandler) -> User | None:
        auth = handler.request.headers.get("Authorization", "")
        name = USERS.get(auth.removeprefix("token ").strip())
        return User(name) if name else None


_CONFIG = f"""
c.ServerApp.authorizer_class = "securenb.server.authorizer.SecurenbAuthorizer"
c.ServerApp.identity_provider_class = "test_server_dataset.TokenUsers"
c.SecurenbAuthorizer.user_roles = {ROLES!r}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with _server(tmp_path_factory.mktemp("dataset-server"), rbac=True) as srv:
        yield srv


@contextlib.contextmanager
def _server(base: Path, rbac: bool) -> Iterator[Server]:
    root, runtime, config = base / "project", base / "runtime", base / "config"
    (root / "data").mkdir(parents=True)
    config.mkdir()
    if rbac:
        (config / "jupyter_server_config.py").write_text(_CONFIG)
    Workspace.init(root, PASSPHRASE)
    (root / "securenb.toml").write_text(  # a role that runs kernels but may not decrypt
        '[permissions]\nrunner = ["*:read", "kernels:*", "sessions:*", "events:*"]\n')
    (root / "data" / "x.csv").write_bytes(PLAIN)
    data.encrypt(root / "data" / "x.csv", kek=KEK, roles=["trainer"])
    (root / "data" / "x.csv").unlink()
    kek_text = base64.b64encode(KEK_BYTES).decode()
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(runtime),
           "SECURENB_KEY_PASSPHRASE": PASSPHRASE, "SECURENB_KEK": kek_text,
           "JUPYTER_CONFIG_DIR": str(config), "JUPYTER_DATA_DIR": str(base / "data"),
           "IPYTHONDIR": str(base / "ipython"),  # its own history, shared by its kernels
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent),
                                          os.environ.get("PYTHONPATH", "")])}
    env.pop("SECURENB_KEK_URI", None)
    env.pop("SECURENB_ROLE", None)
    with running_server(root, runtime, env, base / "server.log") as srv:
        yield srv


def _call(server: Server, token: str, method: str, path: str, body: Any = None) -> Any:
    request = urllib.request.Request(
        server.url + path, data=json.dumps(body).encode() if body is not None else None,
        method=method, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def start_kernel(server: Server, token: str) -> str:
    return str(_call(server, token, "POST", "/api/kernels", {"name": "python3"})["id"])


def run_cell(server: Server, token: str, kernel_id: str, code: str,
             timeout: float = 300) -> tuple[str, str]:
    """Run ``code`` over the kernel websocket as the token's user: (status, all output text)."""
    return asyncio.run(_run_cell(server, token, kernel_id, code, timeout))


async def _run_cell(server: Server, token: str, kernel_id: str, code: str,
                    timeout: float) -> tuple[str, str]:
    session = Session()
    msg = session.msg("execute_request", {"code": code, "silent": False, "store_history": True,
                                          "user_expressions": {}, "allow_stdin": False,
                                          "stop_on_error": True})
    msg["channel"] = "shell"
    url = (server.url.replace("http://", "ws://") +
           f"/api/kernels/{kernel_id}/channels?session_id={session.session}")
    conn = await websocket_connect(HTTPRequest(url, headers={"Authorization": f"token {token}"}))
    conn.write_message(json.dumps(msg, default=str))
    texts: list[str] = []
    status, idle = "", False
    try:
        while not (status and idle):
            raw = await asyncio.wait_for(conn.read_message(), timeout)
            assert raw is not None, "the kernel websocket closed"
            reply = json.loads(raw)
            if reply.get("parent_header", {}).get("msg_id") != msg["header"]["msg_id"]:
                continue
            kind, content = reply["msg_type"], reply["content"]
            if kind == "stream":
                texts.append(content["text"])
            elif kind == "error":
                texts.append(f"{content['ename']}: {content['evalue']}\n")
            elif kind in ("display_data", "execute_result"):
                texts.append(content["data"].get("text/plain", "") + "\n")
            elif kind == "execute_reply":
                status = content["status"]
            elif kind == "status" and content["execution_state"] == "idle":
                idle = True
    finally:
        conn.close()
    return status, "".join(texts)


SETUP = ("import os\n%load_ext securenb\nos.chdir({root!r})\n"
         "print('kek' if 'SECURENB_KEK' in os.environ else 'no kek', os.getpid())\n")
TRAIN = ("%%secure_train --inputs data=data/x.csv.enc --role trainer\n"
         "import securenb.sandbox as sb\n"
         "with sb.dataset('data') as f:\n"
         "    print(f.read().decode())\n")


def _setup(server: Server, token: str) -> tuple[str, int]:
    kernel_id = start_kernel(server, token)
    status, out = run_cell(server, token, kernel_id, SETUP.format(root=str(server.root)))
    assert status == "ok", out
    assert out.split()[:2] == ["no", "kek"], out  # the server's KEK is not inherited
    return kernel_id, int(out.split()[-1])


def _data_key(root: Path) -> bytes:
    """The dataset's own data key, unwrapped here (the test holds the KEK)."""
    return data.data_key_for(root / "data" / "x.csv.enc", KEK, role="trainer").material


def _denials(root: Path) -> list[dict[str, Any]]:
    ws = Workspace(root)
    return [dict(r.entry.details) for r in ws.audit_log.tail(200)
            if r.entry.action == "access.deny"]


def test_a_kernel_trains_on_a_dataset_released_by_the_server(server: Server) -> None:
    kernel_id, pid = _setup(server, "trainer-token")
    status, out = run_cell(server, "trainer-token", kernel_id, TRAIN)
    assert status == "ok", out
    assert PLAIN.decode() in out
    # the data key of the dataset and the KEK were never in the kernel's memory
    kek = KEK_BYTES
    needles = {"data key": _data_key(server.root), "KEK": kek,
               "KEK (base64)": base64.b64encode(kek)}
    assert memory_contains(pid, needles) == []
    # the search works: a value the kernel holds is found
    run_cell(server, "trainer-token", kernel_id, "marker = bytes.fromhex('5ec12e7b' * 8)")
    assert memory_contains(pid, {"marker": bytes.fromhex("5ec12e7b" * 8)}) == ["marker"]
    ws = Workspace(server.root)
    releases = [dict(r.entry.details) for r in ws.audit_log.tail(200)
                if r.entry.action == "data.release"]
    assert releases and releases[-1]["users"] == ["trainer-user"], releases
    assert releases[-1]["role"] == "trainer" and releases[-1]["kernel"] == kernel_id


def test_a_user_without_the_role_is_refused_even_with_the_kek_in_hand(server: Server,
                                                                     tmp_path: Path) -> None:
    """analyst-user claims --role trainer and puts the KEK in the kernel: the server still
    decides (no fallback to unwrapping in the kernel), refuses, and audits the denial."""
    kernel_id, _ = _setup(server, "analyst-token")
    kek_file = tmp_path / "kek.b64"  # read by the cell: the KEK stays out of IPython's history
    kek_file.write_text(base64.b64encode(KEK_BYTES).decode())
    run_cell(server, "analyst-token", kernel_id,
             f"os.environ['SECURENB_KEK'] = open({str(kek_file)!r}).read()")
    status, out = run_cell(server, "analyst-token", kernel_id, TRAIN)
    assert status == "error", out
    assert PLAIN.decode() not in out
    error = [line for line in out.splitlines() if "refused" in line]
    assert len(error) == 1 and "analyst-user" in error[0] and "trainer" in error[0], out
    assert "Traceback" not in out, out
    denial = _denials(server.root)[-1]
    assert denial["user"] == "analyst-user" and denial["action"] == "decrypt"
    assert denial["resource"] == "data/x.csv.enc" and denial["kernel"] == kernel_id


def test_a_role_without_the_decrypt_permission_is_refused(server: Server) -> None:
    kernel_id, _ = _setup(server, "runner-token")
    status, out = run_cell(server, "runner-token", kernel_id, TRAIN)
    assert status == "error" and PLAIN.decode() not in out, out
    assert "may not decrypt datasets" in out and "securenb:decrypt" in out, out
    assert _denials(server.root)[-1]["user"] == "runner-user"


def test_every_user_who_opened_the_kernel_must_hold_the_role(server: Server) -> None:
    """A second user who can run code in the kernel would read the copy's key there."""
    kernel_id, _ = _setup(server, "trainer-token")
    run_cell(server, "analyst-token", kernel_id, "print('analyst was here')")
    status, out = run_cell(server, "trainer-token", kernel_id, TRAIN)
    assert status == "error" and PLAIN.decode() not in out, out
    assert "user 'analyst-user' does not hold role 'trainer'" in out, out
    assert _denials(server.root)[-1]["user"] == "analyst-user"  # the one who lacks it


@pytest.fixture(scope="module")
def plain_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The default install: the extension without RBAC (every authenticated user may all)."""
    with _server(tmp_path_factory.mktemp("plain-server"), rbac=False) as srv:
        yield srv


def test_without_rbac_the_role_named_is_checked_and_the_kek_stays_in_the_server(
        plain_server: Server) -> None:
    kernel_id, pid = _setup(plain_server, TOKEN)
    status, out = run_cell(plain_server, TOKEN, kernel_id, TRAIN)
    assert status == "ok" and PLAIN.decode() in out, out
    assert memory_contains(pid, {"data key": _data_key(plain_server.root), "KEK": KEK_BYTES,
                                 "KEK (base64)": base64.b64encode(KEK_BYTES)}) == []
    status, out = run_cell(plain_server, TOKEN, kernel_id,
                           TRAIN.replace("--role trainer", "--role analyst"))
    assert status == "error" and PLAIN.decode() not in out, out
    assert "role 'analyst' may not decrypt this dataset (allowed: trainer)" in out, out
    assert _denials(plain_server.root)[-1]["kernel"] == kernel_id


def test_a_kernel_no_user_opened_gets_nothing(server: Server) -> None:
    """A kernel started over REST but never opened by a user of this server: whose role?"""
    kernel_id = start_kernel(server, "trainer-token")
    signer = _signer(server, kernel_id)
    with pytest.raises(SecurenbError, match="no user of this server has opened kernel"):
        signer._call("/v1/dataset-check", {"path": "data/x.csv.enc", "role": "trainer"})


def _signer(server: Server, kernel_id: str) -> RemoteSigner:
    discovery = json.loads((server.runtime / f"securenb-signer-{server.pid}.json").read_text())
    identity = KernelIdentity.from_connection_file(server.runtime / f"kernel-{kernel_id}.json")
    return RemoteSigner(Path(discovery["socket"]), identity)


def test_paths_outside_the_root_or_the_inbox_are_refused(server: Server,
                                                         tmp_path: Path) -> None:
    kernel_id, _ = _setup(server, "trainer-token")
    signer = _signer(server, kernel_id)
    outside = server.root.parent / "outside"
    outside.mkdir(exist_ok=True)
    (outside / "y.csv").write_bytes(PLAIN)
    data.encrypt(outside / "y.csv", kek=KEK, roles=["trainer"])
    (server.root / "escape").symlink_to(outside)
    linked = server.root / "data" / "z.csv.enc"
    linked.symlink_to(outside / "y.csv.enc")
    # a ciphertext of the root whose manifest is a link to another dataset's
    shutil.copy(outside / "y.csv.enc", server.root / "data" / "w.csv.enc")
    (server.root / "data" / "w.csv.enc.manifest.json").symlink_to(
        outside / "y.csv.enc.manifest.json")
    runtime = Path(tempfile.mkdtemp(prefix="snb-", dir=base_dir()))
    link = runtime.with_name(runtime.name + "-link")
    try:
        _refuses_escapes(signer, outside, runtime, link, tmp_path)
    finally:
        link.unlink(missing_ok=True)
        shutil.rmtree(runtime)


def _refuses_escapes(signer: RemoteSigner, outside: Path, runtime: Path, link: Path,
                     tmp_path: Path) -> None:
    inbox = runtime / "inbox" / "datasets"
    inbox.mkdir(parents=True)
    for path, why in ((str(outside / "y.csv.enc"), "outside the server's root folder"),
                      ("../outside/y.csv.enc", "outside the server's root folder"),
                      ("escape/y.csv.enc", "outside the server's root folder"),
                      ("data/z.csv.enc", "outside the server's root folder"),
                      ("data/w.csv.enc", "not a plain file")):
        with pytest.raises(SecurenbError, match=why):
            signer._call("/v1/dataset-stage", {"path": path, "role": "trainer",
                                              "folder": str(inbox)})
    sneaky = tmp_path / "inbox" / "datasets"
    sneaky.mkdir(parents=True)
    link.symlink_to(tmp_path)
    shared = runtime.with_name(runtime.name + "-shared") / "inbox" / "datasets"
    shared.mkdir(parents=True)
    shared.chmod(0o777)
    try:
        for folder in ("/etc", str(sneaky), str(link / "inbox" / "datasets"), str(shared),
                       str(runtime / "inbox" / ".." / "inbox" / "datasets" / "..")):
            with pytest.raises(SecurenbError, match="not a sandbox inbox"):
                signer._call("/v1/dataset-stage", {"path": "data/x.csv.enc", "role": "trainer",
                                                  "folder": folder})
    finally:
        shutil.rmtree(shared.parent.parent)
    assert list(sneaky.iterdir()) == [] and list(inbox.iterdir()) == []
    staged = signer._call("/v1/dataset-stage", {"path": "data/x.csv.enc", "role": "trainer",
                                               "folder": str(inbox)})
    assert Path(staged["path"]).parent == inbox and "key" in staged


def test_a_kernel_cannot_read_the_kek_from_the_server_process(server: Server,
                                                              tmp_path: Path) -> None:
    """The server was started with $SECURENB_KEK: scrubbed from its environment block too
    (what /proc/<server>/environ shows), not only from os.environ."""
    kernel_id, _ = _setup(server, "trainer-token")
    dump = tmp_path / "seen.bin"
    status, out = run_cell(server, "trainer-token", kernel_id, f"""
seen = b""
for name in ("environ", "cmdline"):
    try:
        seen += open(f"/proc/{{os.environ['JPY_PARENT_PID']}}/{{name}}", "rb").read()
    except OSError:
        pass
open({str(dump)!r}, "wb").write(seen)
""")
    assert status == "ok", out
    seen = dump.read_bytes()
    if os.geteuid() == 0:  # root reads a non-dumpable process's block: the scrub is the guard
        assert b"JUPYTER_RUNTIME_DIR=" in seen
    assert base64.b64encode(KEK_BYTES) not in seen


def test_a_dataset_under_another_kek_fails_with_one_line(server: Server) -> None:
    other = server.root / "data" / "o.csv"
    other.write_bytes(PLAIN)
    foreign = LocalKek.generate("env:OTHER_KEK")
    data.encrypt(other, kek=foreign, roles=["trainer"])
    other.unlink()
    kernel_id, _ = _setup(server, "trainer-token")
    status, out = run_cell(server, "trainer-token", kernel_id,
                           TRAIN.replace("data/x.csv.enc", "data/o.csv.enc"))
    assert status == "error" and PLAIN.decode() not in out, out
    (line,) = [x for x in out.splitlines() if x.strip()]
    assert f"wrapped by KEK {foreign.key_id}, which this server does not hold" in line, out
    assert KEK.key_id in line, out
