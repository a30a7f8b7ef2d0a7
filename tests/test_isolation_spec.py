"""Sandbox specs, limits, bwrap command lines, seccomp programs and cgroups (no sandbox run)."""

from __future__ import annotations

import os
import struct
import sys
from pathlib import Path

import pytest

from securenb.core.policy import IsolationPolicy
from securenb.isolation import bwrap, cgroups, seccomp
from securenb.isolation.errors import BackendUnavailableError, IsolationError
from securenb.isolation.limits import Limits, parse_size
from securenb.isolation.runtime import RuntimeDir
from securenb.isolation.spec import SANDBOX_PREVIOUS, Mount, build_spec


@pytest.mark.parametrize(("text", "size"), [("4g", 4 << 30), ("512M", 512 << 20),
                                            ("1.5GiB", 3 << 29), ("1024", 1024), (77, 77)])
def test_parse_size(text: str | int, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["lots", "-1g", "0", "4x"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(IsolationError, match="memory"):
        parse_size(text)


def test_limits_must_be_positive() -> None:
    with pytest.raises(IsolationError, match="processes"):
        Limits(memory_bytes=1, cpu_seconds=1, processes=0, timeout_seconds=1)


@pytest.mark.parametrize("path", ["relative", "/a:b", "/a\nb"])
def test_mount_paths_are_checked(path: str) -> None:
    with pytest.raises(IsolationError):
        Mount(path)


def test_only_network_none(tmp_path: Path) -> None:
    with pytest.raises(IsolationError, match="only 'none'"):
        build_spec(IsolationPolicy(), workdir=tmp_path, network="host")


@pytest.mark.parametrize("bad", ["home", "root", "venv", "workspace", "sys.path"])
def test_dangerous_output_folders_are_refused(tmp_path: Path, bad: str,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".securenb").mkdir()
    monkeypatch.syspath_prepend(str(tmp_path / "lib"))
    (tmp_path / "lib").mkdir()
    target = {"home": Path.home(), "root": Path("/"), "venv": Path(sys.prefix) / "out",
              "workspace": tmp_path, "sys.path": tmp_path / "lib"}[bad]
    with pytest.raises(IsolationError):
        build_spec(IsolationPolicy(), workdir=tmp_path, output_dir=target)


def test_record_form_names_secrets_but_holds_no_values(tmp_path: Path) -> None:
    spec = build_spec(IsolationPolicy(), workdir=tmp_path, output_dir=tmp_path / "outputs",
                      secret_names=("HF_TOKEN",), env=(("A", "1"),))
    record = spec.to_json()
    assert record["secrets"] == ["HF_TOKEN"] and record["env"] == ["A"]
    assert record["unsafe"] is False and record["network"] == "none"


def _options(tmp_path: Path) -> tuple[list[str], RuntimeDir]:
    (tmp_path / "data").mkdir()
    spec = build_spec(IsolationPolicy(), workdir=tmp_path, inputs=(tmp_path / "data",),
                      output_dir=tmp_path / "outputs")
    runtime = RuntimeDir.create()
    return bwrap.options(spec, runtime, bwrap.sandbox_env(spec, {"TOKEN": "v"})), runtime


def test_bwrap_options_order_and_hardening(tmp_path: Path) -> None:
    opts, runtime = _options(tmp_path)
    try:
        joined = " ".join(opts)
        for flag in ("--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent",
                     "--new-session", "--cap-drop ALL", "--clearenv"):
            assert flag in joined
        assert opts.index("/tmp") < opts.index(str(runtime.ipc))  # tmpfs before binds under it
        assert opts[-2:] == ["--remount-ro", "/"]
        data = str((tmp_path / "data").resolve())
        out = str((tmp_path / "outputs").resolve())
        assert ["--ro-bind", data, data] == opts[opts.index(data) - 1:opts.index(data) + 2]
        triples = [opts[i:i + 3] for i in range(len(opts) - 2)]
        assert ["--bind", str(runtime.outbox), out] in triples  # the sandbox writes its outbox
        assert ["--ro-bind", out, SANDBOX_PREVIOUS] in triples  # and only reads the real one
        assert ["--ro-bind", "/proc/sys", "/proc/sys"] in triples
        created = {opts[i + 1] for i, o in enumerate(opts) if o == "--dir"}  # empty folders
        assert str(Path.home()) not in [o for o in opts if o.startswith("/") and
                                        not o.startswith(sys.base_prefix) and o not in created]
        env = {opts[i + 1]: opts[i + 2] for i, o in enumerate(opts) if o == "--setenv"}
        assert env["HOME"] == "/home/sandbox" and env["TOKEN"] == "v"
        assert "SECURENB_KEY_PASSPHRASE" not in env
    finally:
        runtime.remove()


def test_bwrap_argv_keeps_options_out_of_the_process_list(tmp_path: Path) -> None:
    if not bwrap.shutil.which("bwrap"):
        pytest.skip("bwrap not installed")
    spec = build_spec(IsolationPolicy(), workdir=tmp_path, output_dir=tmp_path / "outputs")
    runtime = RuntimeDir.create()
    launch = bwrap.build(spec, runtime, ["python", "-V"], {"TOKEN": "s3cret-value"})
    try:
        assert "s3cret-value" not in " ".join(launch.argv)
        assert "--args" in launch.argv and "--seccomp" in launch.argv
        args = os.pread(launch.pass_fds[0], 1 << 20, 0)
        assert b"s3cret-value" in args  # travels in the memfd instead
    finally:
        launch.close_fds()
        if launch.cgroup is not None:
            launch.cgroup.remove()
        runtime.remove()


def test_bwrap_missing_names_the_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BackendUnavailableError, match="apt-get install bubblewrap"):
        bwrap.executable()


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_seccomp_program_is_well_formed(arch: str) -> None:
    program = seccomp.build_filter(arch)
    assert len(program) % 8 == 0 and len(program) // 8 < 4096
    code, _, _, k = struct.unpack_from("<HBBI", program, 0)
    assert code == 0x20 and k == 4  # load arch first
    code, _, _, k = struct.unpack_from("<HBBI", program, 8)
    assert k == seccomp._ARCHES[arch].audit_arch  # then compare it
    last = struct.unpack_from("<HBBI", program, len(program) - 8)
    assert last == (0x06, 0, 0, seccomp.RET_KILL_PROCESS)


def test_seccomp_unknown_architecture() -> None:
    with pytest.raises(BackendUnavailableError, match="no seccomp filter"):
        seccomp.build_filter("sparc")


@pytest.mark.skipif(os.geteuid() != 0, reason="cgroups are used (and writable) only as root")
def test_root_sandboxes_get_a_cgroup_with_the_limits() -> None:
    limits = Limits(memory_bytes=256 << 20, cpu_seconds=10, processes=33, timeout_seconds=10)
    try:
        group = cgroups.Cgroup.create(limits)
    except BackendUnavailableError as exc:
        pytest.skip(str(exc))
    try:
        texts = {p.name: (p / "pids.max").read_text().strip() for p in group.dirs
                 if (p / "pids.max").exists()}
        assert "33" in texts.values()
        argv = group.wrap(["bwrap", "x"])
        assert argv[:2] == ["/bin/sh", "-c"] and argv[-2:] == ["bwrap", "x"]
        assert not group.memory_exceeded()
    finally:
        group.remove()
    assert not any(d.exists() for d in group.dirs)


def test_gpus_need_devices(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from securenb.isolation import hostenv

    monkeypatch.setattr(hostenv.glob, "glob", lambda pattern: [])
    with pytest.raises(IsolationError, match="found 0 NVIDIA GPU"):
        hostenv.gpu_devices(1)
    assert hostenv.cuda_visible_devices(0) == ""
    fake = ["/dev/nvidia0", "/dev/nvidia1"]
    monkeypatch.setattr(hostenv.glob, "glob",
                        lambda pattern: fake if pattern == "/dev/nvidia[0-9]*" else [])
    monkeypatch.setattr(hostenv.os.path, "exists", lambda p: p == "/dev/nvidiactl")
    assert hostenv.gpu_devices(1) == ["/dev/nvidia0", "/dev/nvidiactl"]
    assert hostenv.gpu_devices("all")[:2] == fake
    assert hostenv.cuda_visible_devices("all") == "0,1"
    assert hostenv.cuda_visible_devices(1) == "0"
    assert bwrap.rlimit_args(Limits(1 << 30, 10, 5, 5), 1)[1] == f"--data={1 << 30}"
    assert bwrap.rlimit_args(Limits(1 << 30, 10, 5, 5), 0)[1] == f"--as={1 << 30}"
