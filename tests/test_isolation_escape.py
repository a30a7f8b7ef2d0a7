"""Escape attempts against a real bwrap sandbox: each one must fail inside.

One sandboxed kernel (small limits) serves the whole module; every test runs
an attack in it and checks that the attack failed and the host is unchanged.
"""

from __future__ import annotations

import os
import shutil
import socket
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from securenb.core.policy import IsolationPolicy
from securenb.isolation.detect import check_bwrap
from securenb.isolation.outbox import collect
from securenb.isolation.secrets import Redactor
from securenb.isolation.spec import build_spec
from securenb.isolation.subkernel import Reply, SubKernel

pytestmark = pytest.mark.skipif(not check_bwrap().available, reason=check_bwrap().detail)

PLANTED_ENV = "SECURENB_TEST_PLANTED_" + uuid.uuid4().hex[:8].upper()
MEMORY = 768 << 20
PROCESSES = 48


class Sandbox:
    def __init__(self, kernel: SubKernel, root: Path, home_file: Path) -> None:
        self.kernel, self.root, self.home_file = kernel, root, home_file

    def run(self, code: str, timeout: float = 30) -> tuple[Reply, str]:
        out: list[str] = []

        def sink(kind: str, content: dict[str, Any]) -> None:
            if kind == "stream":
                out.append(content["text"])

        reply, _, _ = self.kernel.run(textwrap.dedent(code), sink, Redactor({}), timeout)
        collect(self.kernel.outbox, self.root / "outputs")  # as %%secure_train does
        return reply, "".join(out)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    root = tmp_path_factory.mktemp("escape")
    (root / "inputs").mkdir()
    (root / "inputs" / "data.txt").write_text("input data\n")
    setuid = root / "inputs" / "id-setuid"  # a set-user-ID copy of id(1)
    shutil.copy(shutil.which("id") or "/usr/bin/id", setuid)
    setuid.chmod(0o4755)
    home_file = Path.home() / f".securenb-planted-{uuid.uuid4().hex}"
    home_file.write_text("home secret\n")
    os.environ[PLANTED_ENV] = "host-only-value"
    policy = IsolationPolicy(memory=str(MEMORY), processes=PROCESSES, cpu_seconds=120)
    spec = build_spec(policy, workdir=root, backend="bwrap", inputs=(root / "inputs",),
                      output_dir=root / "outputs")
    kernel = SubKernel(spec, {})
    try:
        kernel.start()
        yield Sandbox(kernel, root, home_file)
    finally:
        kernel.shutdown(now=True)
        home_file.unlink(missing_ok=True)
        os.environ.pop(PLANTED_ENV, None)


def _host_address() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.1", 9))  # no packet is sent; picks the outgoing interface
        return str(probe.getsockname()[0])


@pytest.mark.parametrize("where", ["loopback", "host address"])
def test_tcp_connection_fails(sandbox: Sandbox, where: str) -> None:
    server = socket.socket()
    server.bind(("0.0.0.0", 0))  # listening on every address is the point
    server.listen()
    port = server.getsockname()[1]
    address = "127.0.0.1" if where == "loopback" else _host_address()
    try:
        socket.create_connection((address, port), timeout=2).close()  # works from the host
        reply, out = sandbox.run(f"""
            import socket
            try:
                socket.create_connection(({address!r}, {port}), timeout=2)
                print("CONNECTED")
            except OSError as exc:
                print("FAILED", exc.errno)
        """)
    finally:
        server.close()
    assert reply.status == "ok" and "FAILED" in out and "CONNECTED" not in out


def test_writes_outside_the_output_folder_fail(sandbox: Sandbox) -> None:
    host_tmp = Path("/tmp") / f"securenb-host-{uuid.uuid4().hex}"
    host_tmp.write_text("host file\n")
    targets = [sandbox.root / "inputs" / "data.txt", sandbox.root / "new.txt", "/etc/passwd",
               Path(os.__file__), Path(shutil.which("bwrap") or "/usr/bin/bwrap"), "/newfile"]
    try:
        reply, out = sandbox.run(f"""
            import pathlib
            for target in {[str(t) for t in targets]!r}:
                try:
                    pathlib.Path(target).write_text("pwned")
                    print("WROTE", target)
                except OSError as exc:
                    print("DENIED", target, exc.strerror)
            pathlib.Path({str(host_tmp)!r}).write_text("pwned")  # private /tmp: allowed, unseen
            (pathlib.Path({str(sandbox.root / 'outputs')!r}) / "ok.txt").write_text("fine")
            print("OUTPUT OK")
        """)
        assert reply.status == "ok", reply
        assert "WROTE" not in out and out.count("DENIED") == len(targets)
        assert "OUTPUT OK" in out and (sandbox.root / "outputs" / "ok.txt").read_text() == "fine"
        assert host_tmp.read_text() == "host file\n"
        assert (sandbox.root / "inputs" / "data.txt").read_text() == "input data\n"
    finally:
        host_tmp.unlink()


def test_planted_home_file_is_unreadable(sandbox: Sandbox) -> None:
    reply, out = sandbox.run(f"""
        import os, pathlib
        try:
            print("READ", pathlib.Path({str(sandbox.home_file)!r}).read_text())
        except OSError as exc:
            print("DENIED", type(exc).__name__)
        print("HOME", os.path.expanduser("~"), sorted(os.listdir(os.path.expanduser("~"))))
        print("SSH", os.path.exists({str(Path.home() / '.ssh')!r}))
    """)
    assert reply.status == "ok"
    assert "DENIED" in out and "home secret" not in out
    assert "HOME /home/sandbox ['.ipython']" in out and "SSH False" in out


def test_planted_environment_variable_is_absent(sandbox: Sandbox) -> None:
    assert os.environ[PLANTED_ENV] == "host-only-value"
    reply, out = sandbox.run(f"""
        import os
        print("PRESENT" if {PLANTED_ENV!r} in os.environ else "ABSENT")
        print(sorted(os.environ))
    """)
    assert reply.status == "ok" and "ABSENT" in out and "host-only-value" not in out
    assert "SECURENB_KEY_PASSPHRASE" not in out


def test_host_processes_are_invisible(sandbox: Sandbox) -> None:
    reply, out = sandbox.run("""
        import os
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
        names = sorted(open(f"/proc/{p}/comm").read().strip() for p in pids)
        print("PIDS", len(pids), names)
    """)
    assert reply.status == "ok"
    count = int(out.split("PIDS ")[1].split()[0])
    assert count <= 3, out  # bwrap's init, the kernel, maybe a helper; never the host's
    assert "pytest" not in out and str(os.getpid()) not in out.split("PIDS")[1].split("[")[0]


def test_no_privileges_can_be_gained(sandbox: Sandbox) -> None:
    setuid_id = str(sandbox.root / "inputs" / "id-setuid")
    reply, out = sandbox.run("""
        import ctypes, os, subprocess
        status = dict(l.split(":\\t", 1) for l in open("/proc/self/status").read().splitlines()
                      if ":\\t" in l)
        print("CAPS", {k: status[k].strip() for k in ("CapInh", "CapPrm", "CapEff", "CapBnd",
                                                       "CapAmb")})
        print("NNP", status["NoNewPrivs"].strip(), "SECCOMP", status["Seccomp"].strip())
        for attempt in (lambda: os.setuid(0), lambda: os.setgid(0)):
            try:
                attempt(); print("BECAME ROOT")
            except OSError:  # EINVAL: uid 0 does not even exist in the sandbox's namespace
                print("SETID DENIED")
        r = subprocess.run(["unshare", "--user", "--map-root-user", "id", "-u"],
                           capture_output=True, text=True)
        print("UNSHARE", r.returncode, r.stdout.strip())
        libc = ctypes.CDLL(None, use_errno=True)
        print("PTRACE", libc.ptrace(16, 1, 0, 0), ctypes.get_errno())  # PTRACE_ATTACH to init
        mounts = open("/proc/self/mountinfo").read()
        print("USR NOSUID", all("nosuid" in l for l in mounts.splitlines() if " /usr " in l))
        r = subprocess.run([SETUID_ID, "-u"], capture_output=True, text=True)
        print("SETUID-ID", r.stdout.strip(), "OWN-ID", os.getuid())
    """.replace("SETUID_ID", repr(setuid_id)))
    assert reply.status == "ok", reply
    zero = "0000000000000000"
    for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert f"'{cap}': '{zero}'" in out
    assert "NNP 1 SECCOMP 2" in out
    assert out.count("SETID DENIED") == 2 and "BECAME ROOT" not in out
    assert "UNSHARE 0" not in out and "UNSHARE 1" in out
    assert "PTRACE -1 1" in out  # EPERM from the seccomp filter
    own = int(out.split("OWN-ID ")[1].split()[0])  # 1000, or a root caller's dedicated uid
    assert "USR NOSUID True" in out and f"SETUID-ID {own} OWN-ID" in out and own != 0


def test_fork_bomb_stops_at_the_process_limit(sandbox: Sandbox) -> None:
    reply, out = sandbox.run(f"""
        import os, time
        children, error = [], None
        try:
            for _ in range({PROCESSES * 4}):
                pid = os.fork()
                if pid == 0:
                    time.sleep(30)
                    os._exit(0)
                children.append(pid)
        except OSError as exc:
            error = exc
        for pid in children:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        print("FORKED", len(children), "ERROR", type(error).__name__)
    """, timeout=60)
    assert reply.status == "ok", reply
    forked = int(out.split("FORKED ")[1].split()[0])
    assert forked < PROCESSES and "ERROR BlockingIOError" in out


def test_allocation_past_the_memory_limit_fails(sandbox: Sandbox) -> None:
    reply, out = sandbox.run(f"""
        try:
            block = bytearray({MEMORY * 2})
            print("ALLOCATED")
        except MemoryError:
            print("MEMORY ERROR")
        small = bytearray(16 << 20)
        print("STILL OK", len(small))
    """)
    assert reply.status == "ok" and "MEMORY ERROR" in out and "ALLOCATED" not in out
    assert sandbox.kernel.alive()


def test_mounted_inputs_are_read_only_and_present(sandbox: Sandbox) -> None:
    reply, out = sandbox.run(f"""
        print(open({str(sandbox.root / 'inputs' / 'data.txt')!r}).read())
    """)
    assert reply.status == "ok" and "input data" in out


def test_cpu_time_limit_ends_the_sandbox(tmp_path: Path) -> None:
    policy = IsolationPolicy(cpu_seconds=3)
    kernel = SubKernel(build_spec(policy, workdir=tmp_path, backend="bwrap"), {})
    kernel.start()
    try:
        reply, _, _ = kernel.run("while True:\n    pass", lambda kind, content: None,
                                 Redactor({}), timeout=60)
        assert reply.status == "died" and "CPU-time limit (3 s)" in reply.detail
    finally:
        kernel.shutdown(now=True)


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv")
                    or not os.path.exists("/usr/bin/python3"),
                    reason="needs root (to become an unprivileged user), setpriv, /usr/bin/python3")
def test_unprivileged_callers_get_the_process_limit_from_rlimits(tmp_path: Path) -> None:
    """Without root there is no cgroup: the rlimit set inside the sandbox's user namespace
    counts only the sandbox's processes, and stops a fork bomb."""
    import subprocess

    from securenb.isolation import bwrap, seccomp
    from securenb.isolation.hostenv import PythonEnv
    from securenb.isolation.runtime import RuntimeDir

    python = PythonEnv("/usr/bin/python3", "/usr", "/usr", "/usr/lib/securenb-absent")
    spec = build_spec(IsolationPolicy(processes=20), workdir=tmp_path, backend="bwrap",
                      python=python)
    runtime = RuntimeDir.create(owner=65534)
    opts = bwrap.options(spec, runtime, bwrap.sandbox_env(spec, {}))
    bomb = ("import os, time\nn = 0\ntry:\n    while n < 200:\n        if os.fork() == 0:\n"
            "            time.sleep(5); os._exit(0)\n        n += 1\nexcept OSError:\n    pass\n"
            "print('FORKED', n)\n")
    filter_path = runtime.path / "filter.bpf"
    filter_path.write_bytes(seccomp.build_filter())
    try:
        with open(filter_path, "rb") as bpf:
            proc = subprocess.run(
                ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                 shutil.which("bwrap") or "bwrap", *opts, "--seccomp", str(bpf.fileno()), "--",
                 *bwrap.rlimit_args(spec.limits, 0), "/usr/bin/python3", "-c", bomb],
                capture_output=True, text=True, timeout=60, pass_fds=(bpf.fileno(),),
                check=False)
    finally:
        runtime.remove()
    assert proc.returncode == 0, proc.stderr
    assert 0 < int(proc.stdout.split("FORKED ")[1]) < 20


@pytest.mark.skipif(os.geteuid() != 0, reason="the whole-sandbox memory cap is a cgroup (root)")
def test_memory_outside_the_address_space_hits_the_sandbox_cap(tmp_path: Path) -> None:
    """tmpfs pages are not address space (no RLIMIT_AS): the cgroup cap ends the sandbox."""
    kernel = SubKernel(build_spec(IsolationPolicy(memory="600m"), workdir=tmp_path,
                                  backend="bwrap"), {})
    kernel.start()
    try:
        reply, _, _ = kernel.run(
            "chunk = b'x' * (1 << 20)\nwith open('/dev/shm/fill', 'wb') as f:\n"
            "    for _ in range(900):\n        f.write(chunk)\n",
            lambda kind, content: None, Redactor({}), timeout=60)
        assert reply.status == "died" and "memory limit" in reply.detail
    finally:
        kernel.shutdown(now=True)


def test_a_failed_setup_keeps_the_cell_from_running(sandbox: Sandbox) -> None:
    out: list[str] = []
    reply, before, _ = sandbox.kernel.run(
        "print('CELL RAN')", lambda kind, c: out.append(c.get("text", "")), Redactor({}), 30,
        prelude="raise ValueError('staged input changed')")
    assert reply.status == "error" and reply.evalue == "staged input changed"
    assert before is reply and "CELL RAN" not in "".join(out)


@pytest.mark.skipif(os.geteuid() != 0, reason="CPU time over a whole sandbox is a cgroup (root)")
def test_cpu_time_counts_for_all_processes_of_the_sandbox(tmp_path: Path) -> None:
    """Four busy children each stay under RLIMIT_CPU; together they pass the limit."""
    kernel = SubKernel(build_spec(IsolationPolicy(cpu_seconds=4), workdir=tmp_path,
                                  backend="bwrap"), {})
    kernel.start()
    try:
        reply, _, _ = kernel.run(textwrap.dedent("""
            import os, time
            pids = []
            for _ in range(4):
                pid = os.fork()
                if pid == 0:
                    end = time.process_time() + 3.5  # each one stays under 4 s
                    while time.process_time() < end:
                        pass
                    os._exit(0)
                pids.append(pid)
            for pid in pids:
                os.waitpid(pid, 0)
            print("ALL CHILDREN FINISHED")
        """), lambda kind, content: None, Redactor({}), timeout=120)
        assert reply.status == "died" and "CPU-time limit (4 s)" in reply.detail, reply
    finally:
        kernel.shutdown(now=True)


FOUR_WORKERS = textwrap.dedent("""
            import os, time
            for _ in range(4):
                if os.fork() == 0:
                    end = time.process_time() + 2.9  # each one stays under 3 s
                    while time.process_time() < end:
                        pass
                    os._exit(0)
            for _ in range(4):
                os.wait()
            print("ALL WORKERS FINISHED")
""")  # with cpu_seconds=3: each worker under RLIMIT_CPU, together four budgets
_AS_NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
_WORKERS = """
import json, site, sys
from pathlib import Path
from securenb.core.policy import IsolationPolicy
from securenb.isolation.hostenv import PythonEnv
from securenb.isolation.secrets import Redactor
from securenb.isolation.spec import build_spec
from securenb.isolation.subkernel import SubKernel

work, env, base = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
packages = Path(site.getsitepackages()[0])  # this venv's, readable by anyone
python = PythonEnv(str(env / "bin" / "python"), str(env), base, PythonEnv.current().securenb_dir)
kernel = SubKernel(build_spec(IsolationPolicy(cpu_seconds=2), workdir=work, backend="bwrap",
                              python=python, inputs=(packages,)), {})
kernel.start()
out = []
try:
    reply, _, _ = kernel.run('''
import os, sys, time
for _ in range(4):
    if os.fork() == 0:  # a worker: 1.9 s of CPU, each one under RLIMIT_CPU (2 s)
        end = time.process_time() + 1.9
        while time.process_time() < end:
            pass
        print("WORKER FINISHED", flush=True)
        os._exit(0)
for _ in range(4):
    os.wait()
print("ALL WORKERS FINISHED")
''', lambda kind, content: out.append(content.get("text", "")), Redactor({}), 120)
finally:
    kernel.shutdown(now=True)
print(json.dumps({"status": reply.status, "detail": reply.detail, "out": "".join(out)}))
"""


def _readable_python(env: Path, as_user: list[str]) -> tuple[Path, str]:
    """A venv, of an interpreter ``as_user`` can run, that sees this venv's packages
    (mounted into the sandbox as an input): this venv's own base interpreter may sit in a
    folder only root can read (/root/.pyenv). Returns the venv and its base prefix."""
    import site
    import subprocess
    import sys

    want = f"{sys.version_info.major}.{sys.version_info.minor}"
    for base in (getattr(sys, "_base_executable", ""), "/usr/bin/python3"):
        probe = subprocess.run(
            [*as_user, base, "-c", "import os, sys; os.stat(sys.executable); "
             "print(sys.version[:4].rstrip('.'), sys.base_prefix)"],  # a mount needs the path
            capture_output=True, text=True, check=False) if base else None
        if probe is None or probe.returncode or probe.stdout.split()[:1] != [want]:
            continue
        subprocess.run([base, "-m", "venv", "--without-pip", str(env)], check=True)
        (env / "lib" / f"python{want}" / "site-packages" / "parent.pth").write_text(
            site.getsitepackages()[0] + "\n")
        return env, probe.stdout.split()[1]
    pytest.skip(f"no Python {want} that an unprivileged user can run")


@pytest.mark.skipif(os.geteuid() == 0 and not shutil.which("setpriv"), reason="no setpriv")
def test_unprivileged_callers_get_a_cpu_budget_over_the_whole_sandbox() -> None:
    """No cgroup without root: four workers, each under RLIMIT_CPU, would use four times
    the budget; the parent's watchdog stops the sandbox when they pass it together."""
    import json
    import subprocess
    import sys
    import tempfile

    top = Path(tempfile.mkdtemp(prefix="securenb-nobody-"))  # pytest's folders are 0700
    top.chmod(0o755)
    as_nobody = _AS_NOBODY if os.geteuid() == 0 else []
    work, (python, base) = top / "work", _readable_python(top / "python", as_nobody)
    work.mkdir()
    if as_nobody:
        os.chown(work, 65534, 65534)
    env = {"PATH": os.environ["PATH"], "HOME": str(work), "TMPDIR": str(work)}
    try:
        proc = subprocess.run([*as_nobody, sys.executable, "-c", _WORKERS, str(work),
                               str(python), base],
                              cwd=work, env=env, capture_output=True, text=True, timeout=180,
                              check=False)
    finally:
        shutil.rmtree(top, ignore_errors=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.splitlines()[-1])
    assert result["status"] == "died", result
    assert "CPU-time limit (2 s)" in result["detail"], result
    assert "WORKER FINISHED" not in result["out"] and "ALL WORKERS" not in result["out"]


@pytest.mark.skipif(os.geteuid() != 0, reason="a sandbox cgroup is made for root callers only")
def test_a_cgroup_without_cpu_accounting_still_gets_the_whole_sandbox_budget(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A host whose cgroups have no cpuacct controller (simulated): the budget falls back
    to the pid-namespace sum, never to no budget at all."""
    from securenb.isolation import cgroups

    monkeypatch.setattr(cgroups.Cgroup, "cpu_seconds", lambda self: None)
    kernel = SubKernel(build_spec(IsolationPolicy(cpu_seconds=3), workdir=tmp_path,
                                  backend="bwrap"), {})
    kernel.start()
    try:
        reply, _, _ = kernel.run(FOUR_WORKERS, lambda kind, content: None, Redactor({}),
                                 timeout=120)
        assert reply.status == "died" and "passed the CPU-time limit (3 s)" in reply.detail, \
            reply
    finally:
        kernel.shutdown(now=True)
