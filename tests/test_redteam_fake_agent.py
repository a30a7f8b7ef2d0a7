"""Red team: another local user plants a fake agent where a kernel looks for the real one.

With no ``XDG_RUNTIME_DIR`` (papermill, CI, containers) the agent's folder is
``/tmp/securenb-agent-<uid>``, and its socket name is a hash of the project's
path: anyone can compute it, and in a shared sticky folder anyone can create
that folder first. A kernel that finds a socket there sends it its records and
signing requests, and believes its answers (an audit receipt for an entry that
was never written, "verified" for a tampered model). The client must accept only
an agent of its own user. Real processes as uid 65534.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from securenb.errors import SecurenbError
from securenb.signing.remote import RemoteSigner, agent_socket

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("setpriv") or not os.path.exists("/usr/bin/python3"),
    reason="needs root (to act as another user), setpriv, /usr/bin/python3")

FAKE = """
import os, socket, sys
os.makedirs(os.path.dirname(sys.argv[1]), 0o755, exist_ok=True)
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1])
os.chmod(sys.argv[1], 0o777)
s.listen()
print("up", flush=True)
while True:
    c, _ = s.accept()
    c.settimeout(1)
    data = b""
    try:
        while b"\\r\\n\\r\\n" not in data or not data.rstrip().endswith(b"}"):
            chunk = c.recv(65536)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass
    body = b'{"index": 7, "count": 8, "checkpoint": "fake", "verified": true}'
    c.sendall(b"HTTP/1.0 200 OK\\r\\nContent-Type: application/json\\r\\nContent-Length: "
              + str(len(body)).encode() + b"\\r\\n\\r\\n" + body)
    c.close()
"""


@pytest.fixture
def shared(tmp_path_factory: pytest.TempPathFactory,
           monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A shared sticky folder like /tmp (short: socket paths have 108 bytes at most)."""
    base = Path(f"/tmp/snb-rt-{os.getpid()}")  # a stand-in for /tmp itself
    base.mkdir(mode=0o777)
    base.chmod(0o1777)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(base))
    yield base
    shutil.rmtree(base, ignore_errors=True)


def test_a_kernel_refuses_an_agent_socket_planted_by_another_user(shared: Path,
                                                                  tmp_path: Path) -> None:
    """Crossed on the first version: the fake agent's receipt was taken as durable."""
    root = tmp_path / "project"
    root.mkdir()
    sock = agent_socket(root)
    fake = subprocess.Popen(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                             "/usr/bin/python3", "-c", FAKE, str(sock)],
                            stdout=subprocess.PIPE, text=True, cwd="/")
    try:
        assert fake.stdout is not None and fake.stdout.readline().strip() == "up"
        with pytest.raises(SecurenbError, match="65534"):
            signer = RemoteSigner.for_agent(root)
            assert signer is not None
            signer.audit(root, "model.sign", "model.bin", {})
    finally:
        fake.kill()
        fake.wait(timeout=30)


def test_a_socket_served_by_another_user_in_a_private_folder_is_refused(
        shared: Path, tmp_path: Path) -> None:
    """Even in a folder of this user (0700), the listening process must be this user's."""
    root = tmp_path / "project"
    root.mkdir()
    sock = agent_socket(root)
    sock.parent.mkdir(mode=0o700)
    os.chown(sock.parent, 0, 0)
    inner = Path(f"{shared}/other")
    inner.mkdir()
    inner.chmod(0o777)
    fake_path = inner / "a.sock"
    fake = subprocess.Popen(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                             "/usr/bin/python3", "-c", FAKE, str(fake_path)],
                            stdout=subprocess.PIPE, text=True, cwd="/")
    try:
        assert fake.stdout is not None and fake.stdout.readline().strip() == "up"
        os.symlink(fake_path, sock)  # e.g. a link left by a tool: the peer is who counts
        with pytest.raises(SecurenbError, match="65534"):
            RemoteSigner(sock, None).audit(root, "model.sign", "model.bin", {})
    finally:
        fake.kill()
        fake.wait(timeout=30)
