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
