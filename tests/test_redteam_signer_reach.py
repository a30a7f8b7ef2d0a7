"""Red team: hostile code in a sandbox asks the signer to sign.

The local agent accepts any process of its user (SO_PEERCRED), and the
server's kernel socket any request with a kernel's connection key. A
sandboxed kernel knows its own connection key, and (for a regular caller) runs
as the caller's uid. So neither socket may be reachable from inside: not by
its path, not through another mount, not as an abstract socket. Real agent,
real bwrap.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest
from test_agent import project, start_agent  # noqa: F401 - the project fixture

from securenb.core.policy import IsolationPolicy
from securenb.isolation.detect import check_bwrap
from securenb.isolation.secrets import Redactor
from securenb.isolation.spec import build_spec
from securenb.isolation.subkernel import SubKernel
from securenb.signing.remote import agent_socket

pytestmark = pytest.mark.skipif(not check_bwrap().available, reason=check_bwrap().detail)

PROBE = """
import json, os, socket
found, tried = [], {}
for top in ("/tmp", "/run", "/home", "/var", "/dev/shm", os.path.expanduser("~")):
    for base, dirs, files in os.walk(top):
        for name in files + dirs:
            path = os.path.join(base, name)
            try:
                import stat
                if stat.S_ISSOCK(os.lstat(path).st_mode):
                    found.append(path)
            except OSError:
                pass
for path in [AGENT, *found]:
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(path)
        s.sendall(b"POST /v1/audit HTTP/1.0\\r\\nContent-Length: 2\\r\\n\\r\\n{}")
        tried[path] = s.recv(200).decode(errors="replace")
    except OSError as exc:
        tried[path] = f"error {exc.errno}"
try:
    unix = open("/proc/net/unix").read()
except OSError as exc:
    unix = f"error {exc.errno}"
print(json.dumps({"tried": tried, "agent_named": "securenb-agent" in unix}))
"""


def test_a_sandbox_cannot_reach_the_agent(project: Path, tmp_path: Path) -> None:  # noqa: F811
    agent = start_agent(project)
    try:
        sock = agent_socket(project)
        kernel = SubKernel(build_spec(IsolationPolicy(), workdir=tmp_path, backend="bwrap"), {})
        kernel.start()
        texts: list[str] = []
        try:
            reply, _, _ = kernel.run(
                textwrap.dedent(PROBE).replace("AGENT", repr(str(sock))),
                lambda kind, c: texts.append(c.get("text", "")), Redactor({}), 120)
        finally:
            kernel.shutdown(now=True)
        assert reply.status == "ok", reply
        seen = json.loads("".join(texts).strip().splitlines()[-1])
        assert not any(v.startswith("HTTP") for v in seen["tried"].values()), seen
        assert seen["tried"][str(sock)].startswith("error"), seen
        assert not seen["agent_named"]
        # the agent is up and answers its own user outside the sandbox
        probe = ("import socket,sys\ns=socket.socket(socket.AF_UNIX)\ns.connect(sys.argv[1])\n"
                 "print('connected')")
        out = subprocess.run(["python3", "-c", probe, str(sock)], capture_output=True,
                             text=True, check=False)
        assert out.stdout.strip() == "connected", out.stderr
    finally:
        agent.terminate()
        agent.wait(timeout=30)


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv")
                    or not os.path.exists("/usr/bin/python3"),
                    reason="needs root (to become an unprivileged user), setpriv, /usr/bin/python3")
def test_an_unprivileged_sandbox_cannot_reach_its_users_agent(tmp_path: Path) -> None:
    """A regular caller's sandbox runs as the caller's own uid (a user namespace): SO_PEERCRED
    would let it in, so only the socket's absence inside protects the agent."""
    from securenb.isolation import bwrap, seccomp
    from securenb.isolation.hostenv import PythonEnv
    from securenb.isolation.runtime import RuntimeDir

    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    folder = Path("/tmp/securenb-agent-65534")  # where the agent of uid 65534 listens
    sock = folder / "redteam.sock"
    serve = ("import os, socket, sys, time\nos.makedirs(sys.argv[1], 0o700, exist_ok=True)\n"
             "s = socket.socket(socket.AF_UNIX)\ns.bind(sys.argv[2])\ns.listen()\n"
             "print('up', flush=True)\ns.settimeout(60)\n"
             "try:\n    c, _ = s.accept(); c.sendall(b'HTTP/1.0 200 signed')\n"
             "except OSError:\n    pass\n")
    server = subprocess.Popen([*nobody, "/usr/bin/python3", "-c", serve, str(folder), str(sock)],
                              stdout=subprocess.PIPE, text=True, cwd="/")
    python = PythonEnv("/usr/bin/python3", "/usr", "/usr", "/usr/lib/securenb-absent")
    spec = build_spec(IsolationPolicy(), workdir=tmp_path, backend="bwrap", python=python)
    runtime = RuntimeDir.create(owner=65534)
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "up"
        opts = bwrap.options(spec, runtime, bwrap.sandbox_env(spec, {}))
        filter_path = runtime.path / "filter.bpf"
        filter_path.write_bytes(seccomp.build_filter())
        with open(filter_path, "rb") as bpf:
            proc = subprocess.run(
                [*nobody, shutil.which("bwrap") or "bwrap", *opts, "--seccomp", str(bpf.fileno()),
                 "--", "/usr/bin/python3", "-c",
                 textwrap.dedent(PROBE).replace("AGENT", repr(str(sock)))],
                capture_output=True, text=True, timeout=120, pass_fds=(bpf.fileno(),),
                check=False, cwd="/")
        assert proc.returncode == 0, proc.stderr
        seen = json.loads(proc.stdout.strip().splitlines()[-1])
        assert seen["tried"][str(sock)] == "error 2", seen  # ENOENT: no such path inside
        assert not any(v.startswith("HTTP") for v in seen["tried"].values()), seen
    finally:
        runtime.remove()
        server.kill()
        server.wait(timeout=30)
        shutil.rmtree(folder, ignore_errors=True)
