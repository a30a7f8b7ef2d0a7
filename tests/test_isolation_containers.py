"""podman and docker sandboxes: command lines, and real kernels in real containers.

docker is exercised through the docker CLI against `podman system service`
(DOCKER_HOST), the way the notes say it works on machines without Docker.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_isolation_escape import FOUR_WORKERS

from securenb.core.policy import IsolationPolicy
from securenb.isolation import containers
from securenb.isolation.outbox import collect
from securenb.isolation.runtime import RuntimeDir
from securenb.isolation.secrets import Redactor
from securenb.isolation.spec import SandboxSpec, build_spec
from securenb.isolation.subkernel import Reply, SubKernel

needs_podman = pytest.mark.skipif(shutil.which("podman") is None,
                                  reason="podman is not installed (apt-get install podman)")
MEMORY = 512 << 20
PROCESSES = 64


def _spec(root: Path, backend: str, **kw: Any) -> SandboxSpec:
    policy = IsolationPolicy(memory=str(MEMORY), processes=PROCESSES, cpu_seconds=120)
    (root / "inputs").mkdir(exist_ok=True)
    return build_spec(policy, workdir=root, backend=backend, inputs=(root / "inputs",),
                      output_dir=root / "outputs", **kw)


@pytest.mark.parametrize("backend", ["podman", "docker"])
def test_command_line_has_every_hardening_flag(tmp_path: Path, backend: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(containers, "engine", lambda b: f"/usr/bin/{b}")
    monkeypatch.setattr(containers, "ensure_host_image", lambda b, e: None)
    runtime = RuntimeDir.create()
    try:
        argv = containers.build(backend, _spec(tmp_path, backend), runtime,
                                ["python", "-m", "ipykernel_launcher"], {"HF_TOKEN": "v4lue"},
                                "k1")
    finally:
        runtime.remove()
    line = " ".join(argv.argv)
    for flag in ("--network none", "--read-only", "--cap-drop ALL",
                 "--security-opt no-new-privileges", f"--memory {MEMORY}",
                 f"--memory-swap {MEMORY}", f"--pids-limit {PROCESSES}", "--user 1000:1000",
                 "--ulimit core=0:0", "--rm", "--init", "--env HF_TOKEN "):
        assert flag in line + " ", flag
    assert "v4lue" not in line  # the value is read from the CLI's environment
    assert f"{tmp_path / 'inputs'}:{tmp_path / 'inputs'}:ro" in line
    assert f"{runtime.outbox}:{tmp_path / 'outputs'}:rw" in line  # the sandbox's outbox
    assert f"{tmp_path / 'outputs'}:/run/securenb/previous-outputs:ro" in line
    assert str(Path.home()) + ":" not in line
    assert ("--read-only-tmpfs=false" in line) == (backend == "podman")


def test_gpu_flags_per_backend() -> None:
    assert containers._gpu_flags("podman", "all") == ["--device", "nvidia.com/gpu=all"]
    assert containers._gpu_flags("podman", 2) == ["--device", "nvidia.com/gpu=0", "--device",
                                                  "nvidia.com/gpu=1"]
    assert containers._gpu_flags("docker", "all") == ["--gpus", "all"]
    assert containers._gpu_flags("docker", 2) == ["--gpus", '"device=0,1"']
    assert containers._gpu_flags("docker", 0) == []


def test_an_image_runs_its_own_python_with_securenb_mounted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(containers, "engine", lambda b: "/usr/bin/podman")
    runtime = RuntimeDir.create()
    try:
        spec = _spec(tmp_path, "podman", image="registry.example/train:1")
        argv = containers.build("podman", spec, runtime, ["/venv/bin/python", "-m", "x"], {},
                                "k2").argv
    finally:
        runtime.remove()
    image_at = argv.index("registry.example/train:1")
    assert argv[image_at + 1:] == ["python3", "-m", "x"]
    assert "--env" in argv and "PYTHONPATH=/opt/securenb" in argv
    assert f"{spec.python.securenb_dir}:/opt/securenb/securenb:ro" in argv
    assert not any(a.startswith(f"{spec.python.prefix}:") for a in argv)


class Box:
    def __init__(self, kernel: SubKernel, root: Path) -> None:
        self.kernel, self.root = kernel, root

    def run(self, code: str, timeout: float = 60) -> tuple[Reply, str]:
        out: list[str] = []

        def sink(kind: str, content: dict[str, Any]) -> None:
            if kind == "stream":
                out.append(content["text"])

        reply, _, _ = self.kernel.run(textwrap.dedent(code), sink, Redactor({}), timeout)
        collect(self.kernel.outbox, self.root / "outputs")  # as %%secure_train does
        return reply, "".join(out)


def _start(root: Path, backend: str) -> SubKernel:
    kernel = SubKernel(_spec(root, backend), {"TRAIN_TOKEN": "container-secret-1"})
    kernel.start()
    return kernel


@pytest.fixture(scope="module")
def podman_box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Box]:
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed (apt-get install podman)")
    root = tmp_path_factory.mktemp("podman")
    os.environ["SECURENB_PLANTED_PODMAN"] = "host-value"
    kernel = _start(root, "podman")
    try:
        yield Box(kernel, root)
    finally:
        kernel.shutdown(now=True)
        os.environ.pop("SECURENB_PLANTED_PODMAN", None)


@needs_podman
def test_podman_kernel_is_confined(podman_box: Box) -> None:
    reply, out = podman_box.run(f"""
        import os, socket, pathlib
        status = open("/proc/self/status").read()
        print("CAPEFF", [l.split()[1] for l in status.splitlines() if l.startswith("CapEff")])
        print("NNP", [l.split()[1] for l in status.splitlines() if l.startswith("NoNewPrivs")])
        print("UID", os.getuid(), "SANDBOX", os.environ["SECURENB_SANDBOX"])
        planted = "SECURENB_PLANTED_PODMAN" in os.environ
        print("SECRET", os.environ["TRAIN_TOKEN"], "PLANTED", planted)
        try:
            socket.create_connection(("127.0.0.1", 22), timeout=2); print("NET OK")
        except OSError:
            print("NET FAILED")
        print("HOME", os.path.exists({str(Path.home() / '.bashrc')!r}))
        for target in ("/usr/x", {str(podman_box.root / 'x')!r},
                       {str(podman_box.root / 'inputs' / 'x')!r}):
            try:
                open(target, "w"); print("WROTE", target)
            except OSError:
                print("DENIED")
        pathlib.Path({str(podman_box.root / 'outputs' / 'ok')!r}).write_text("ok")
    """)
    assert reply.status == "ok", reply
    assert "CAPEFF ['0000000000000000']" in out and "NNP ['1']" in out
    assert "UID 1000 SANDBOX podman" in out and "SECRET container-secret-1 PLANTED False" in out
    assert "NET FAILED" in out and "HOME False" in out
    assert "WROTE" not in out and out.count("DENIED") == 3
    assert (podman_box.root / "outputs" / "ok").read_text() == "ok"


@needs_podman
def test_podman_process_and_memory_limits(podman_box: Box) -> None:
    reply, out = podman_box.run(f"""
        import os, time
        children = []
        try:
            for _ in range({PROCESSES * 4}):
                pid = os.fork()
                if pid == 0:
                    time.sleep(30); os._exit(0)
                children.append(pid)
        except OSError as exc:
            print("FORK FAILED", type(exc).__name__)
        for pid in children:
            os.kill(pid, 9); os.waitpid(pid, 0)
        print("FORKED", len(children))
    """)
    assert reply.status == "ok", reply
    assert "FORK FAILED" in out and int(out.split("FORKED ")[1]) < PROCESSES
    reply, out = podman_box.run(f"""
        block = bytearray({MEMORY * 2})
        print("ALLOCATED")
    """)
    assert reply.status in ("error", "died") and "ALLOCATED" not in out


@pytest.fixture(scope="module")
def docker_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if shutil.which("podman") is None or shutil.which("docker") is None:
        pytest.skip("needs the docker CLI and podman (for `podman system service`)")
    sock = tmp_path_factory.mktemp("docker") / "podman.sock"
    service = subprocess.Popen(
        [*containers.prefix("podman"), shutil.which("podman") or "podman",
         *containers.global_options("podman"), "system", "service", "--time=0",
         f"unix://{sock}"],
        env={**os.environ, **containers.engine_env("podman")},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while not sock.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    old = os.environ.get("DOCKER_HOST")
    os.environ["DOCKER_HOST"] = f"unix://{sock}"
    containers._check_engine.cache_clear()
    try:
        yield os.environ["DOCKER_HOST"]
    finally:
        service.terminate()
        service.wait(timeout=20)
        if old is None:
            os.environ.pop("DOCKER_HOST", None)
        else:
            os.environ["DOCKER_HOST"] = old
        containers._check_engine.cache_clear()


def test_docker_kernel_through_docker_host(docker_host: str, tmp_path: Path) -> None:
    kernel = _start(tmp_path, "docker")
    name = containers.container_name(kernel.provisioner.kernel_id)
    try:
        box = Box(kernel, tmp_path)
        reply, out = box.run("""
            import os, socket
            print("SANDBOX", os.environ["SECURENB_SANDBOX"], "UID", os.getuid())
            try:
                socket.create_connection(("127.0.0.1", 22), timeout=2); print("NET OK")
            except OSError:
                print("NET FAILED")
        """)
        assert reply.status == "ok", reply
        assert "SANDBOX docker UID 1000" in out and "NET FAILED" in out
    finally:
        kernel.shutdown(now=True)
    listed = subprocess.run(["docker", "ps", "-a", "--format", "{{.Names}}"],
                            capture_output=True, text=True, check=False)
    assert listed.returncode == 0 and name not in listed.stdout  # removed with the kernel


def test_unavailable_engine_names_itself(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    from securenb.isolation.errors import BackendUnavailableError

    with pytest.raises(BackendUnavailableError, match=r"'podman' is unavailable.*apt-get install"):
        containers.engine("podman")


@needs_podman
def test_podman_without_its_init_is_unavailable_naming_catatonit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from securenb.isolation import detect
    from securenb.isolation.errors import BackendUnavailableError

    bin_dir = tmp_path / "bin"  # a PATH with podman on it but not catatonit
    bin_dir.mkdir()
    (bin_dir / "podman").symlink_to(shutil.which("podman") or "podman")
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setattr(detect, "INIT_PATHS", (str(tmp_path / "absent"),))
    found = detect.check_podman()
    assert not found.available and "catatonit" in found.detail
    with pytest.raises(BackendUnavailableError, match="catatonit"):
        containers.engine("podman")


def test_a_dead_sandbox_kernel_says_why_in_the_server_log(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A kernelspec kernel's output goes to its runtime log only: its death must name a
    cause in the log of the server that started it."""
    import logging

    from jupyter_client.kernelspec import KernelSpec
    from jupyter_client.manager import KernelManager

    from securenb.isolation.detect import check_bwrap
    from securenb.isolation.provisioner import BwrapProvisioner

    if not check_bwrap().available:
        pytest.skip(check_bwrap().detail)
    km = KernelManager()
    km.kernel_id = "dies-at-start"
    km._kernel_spec = KernelSpec(argv=["python3", "-c", "import sys; sys.exit("
                                       "'cannot start: container init missing')",
                                       "{connection_file}"], language="python")
    provisioner = BwrapProvisioner(kernel_id=km.kernel_id, kernel_spec=km._kernel_spec,
                                   parent=km)
    provisioner.sandbox_spec = _spec(tmp_path, "bwrap")
    km.provisioner = provisioner
    with caplog.at_level(logging.ERROR):
        km.start_kernel(cwd=str(tmp_path))
        deadline = time.monotonic() + 30
        while km.is_alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        km.shutdown_kernel(now=True)
    assert "ended with status 1" in caplog.text
    assert "cannot start: container init missing" in caplog.text


@needs_podman
def test_podman_processes_a_cell_started_end_with_it(tmp_path: Path) -> None:
    box = Box(_start(tmp_path, "podman"), tmp_path)  # the module's box may be dead by now
    try:
        reply, _ = box.run("""
            import subprocess
            subprocess.Popen(["sleep", "300"], start_new_session=True)
        """)
        assert reply.status == "ok", reply
        assert box.kernel.stop_strays() >= 1  # as %%secure_train does at cell end
        reply, out = box.run("""
            import os
            def alive(pid):
                return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] not in "ZX"
            print("PROCS", sorted(open(f"/proc/{p}/comm").read().strip()
                                  for p in os.listdir("/proc") if p.isdigit() and alive(p)))
        """)
        assert reply.status == "ok" and "sleep" not in out, out
    finally:
        box.kernel.shutdown(now=True)


@needs_podman
def test_podman_gets_one_cpu_budget_for_all_its_processes(tmp_path: Path) -> None:
    """The container's CPU ulimit is per process: four workers, each under it, would use
    four budgets; the parent's watchdog stops the container when they pass one together."""
    policy = IsolationPolicy(memory=str(MEMORY), processes=PROCESSES, cpu_seconds=3)
    kernel = SubKernel(build_spec(policy, workdir=tmp_path, backend="podman"), {})
    kernel.start()
    box = Box(kernel, tmp_path)
    try:
        reply, out = box.run(FOUR_WORKERS, timeout=120)
        assert reply.status == "died", reply
        assert "passed the CPU-time limit (3 s)" in reply.detail, reply
        assert "ALL WORKERS FINISHED" not in out
    finally:
        kernel.shutdown(now=True)
