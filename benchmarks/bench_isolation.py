"""Isolation: what a sandbox costs, side by side in one run.

Goals (isolation issue): a warm ``%%secure_train`` run adds <= 20 ms over
running the same cell directly; a cold bwrap kernel starts <= 100 ms slower
than the same ipykernel unsandboxed, podman <= 300 ms. The warm figure
includes everything a run does: staging, the cell round trip, ending stray
processes, vetting the output folder, signing SLSA provenance and appending
the audit entry. Vetting (re-creating outputs on the host) is compared with
``shutil.copytree`` of the same files; ending stray processes is timed with
none and with ten of them, and so is the whole-sandbox CPU-time check (every 0.5 s
while a cell runs) with ten, against reading the cgroup's counter (root callers).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from jupyter_client.manager import KernelManager

from securenb.core.policy import IsolationPolicy
from securenb.isolation.spec import build_spec
from securenb.isolation.subkernel import SubKernel

CELL = "x = sum(range(100))\n"


def _median_ms(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return statistics.median(times) * 1e3


def _cold_ms(start: Callable[[], Callable[[], None]], repeat: int) -> float:
    """Median time from launch to a kernel answering kernel_info (shutdown not counted)."""
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        stop = start()
        times.append(time.perf_counter() - began)
        stop()
    return statistics.median(times) * 1e3


def _plain_kernel(workdir: Path) -> Callable[[], Callable[[], None]]:
    def start() -> Callable[[], None]:
        km = KernelManager(kernel_name="python3")
        km.start_kernel(cwd=str(workdir))
        kc = km.client()
        kc.start_channels()
        kc.wait_for_ready(timeout=60)

        def stop() -> None:
            kc.stop_channels()
            km.shutdown_kernel(now=True)
        return stop
    return start


def _sandboxed_kernel(workdir: Path, backend: str) -> Callable[[], Callable[[], None]]:
    spec = build_spec(IsolationPolicy(), workdir=workdir, backend=backend,
                      output_dir=workdir / "outputs")

    def start() -> Callable[[], None]:
        kernel = SubKernel(spec, {})
        kernel.start()
        return lambda: kernel.shutdown(now=True)
    return start


def _warm(workdir: Path, repeat: int) -> tuple[float, float, float]:
    from IPython.core.interactiveshell import InteractiveShell

    from securenb.core.workspace import Workspace
    from securenb.kernel.train_magics import SecureTrainMagics

    os.environ.setdefault("SECURENB_KEY_PASSPHRASE", "benchmark passphrase")
    Workspace.init(workdir, os.environ["SECURENB_KEY_PASSPHRASE"])
    os.chdir(workdir)
    shell = InteractiveShell.instance()
    magics = SecureTrainMagics(shell)
    shell.register_magics(magics)
    try:
        shell.run_cell_magic("secure_train", "", CELL)  # cold start, not measured
        warm = _median_ms(lambda: shell.run_cell_magic("secure_train", "", CELL), repeat)
        magics.trainer.flush()

        def durable() -> None:
            shell.run_cell_magic("secure_train", "", CELL)
            magics.trainer.flush()
        recorded = _median_ms(durable, repeat)
        direct = _median_ms(lambda: shell.run_cell(CELL, store_history=True), repeat)
    finally:
        magics.trainer.shutdown()
    return warm, recorded, direct


def _vetting(work: Path, files: int, size: int, repeat: int) -> tuple[float, float]:
    """collect() of ``files`` files of ``size`` bytes vs shutil.copytree, median ms."""
    from securenb.isolation.outbox import collect

    src, dest = work / "box", work / "vetted"

    def fill() -> None:
        src.mkdir(exist_ok=True)
        for i in range(files):
            (src / f"f{i}.bin").write_bytes(os.urandom(size))

    ours, ref = [], []
    for _ in range(repeat):
        fill()
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir()
        began = time.perf_counter()
        collect(src, dest)
        ours.append(time.perf_counter() - began)
        fill()
        shutil.rmtree(dest)
        began = time.perf_counter()
        shutil.copytree(src, dest)
        ref.append(time.perf_counter() - began)
        shutil.rmtree(src)
    return statistics.median(ours) * 1e3, statistics.median(ref) * 1e3


def _cleanup(work: Path, repeat: int) -> tuple[float, float, float, float | None]:
    """SubKernel.stop_strays with no stray process and with ten, and the whole-sandbox
    CPU-time check with ten (summed over the pid namespace; the cgroup's figure where
    there is one, root callers), median ms."""
    from securenb.isolation.provisioner import namespace_cpu_seconds
    from securenb.isolation.secrets import Redactor

    kernel = SubKernel(build_spec(IsolationPolicy(), workdir=work, backend="bwrap"), {})
    kernel.start()
    spawn = "import subprocess\nfor _ in range(10):\n    subprocess.Popen(['sleep', '60'])\n"
    try:
        none = _median_ms(kernel.stop_strays, repeat)
        kernel.run(spawn, lambda kind, content: None, Redactor({}), 30)
        init = kernel.provisioner.sandbox_init()
        assert init is not None
        summed = _median_ms(lambda: namespace_cpu_seconds(init), repeat * 10)
        group = kernel.provisioner._launch.cgroup if kernel.provisioner._launch else None
        cgroup = _median_ms(group.cpu_seconds, repeat * 10) if group is not None else None
        kernel.stop_strays()
        times = []
        for _ in range(repeat):
            kernel.run(spawn, lambda kind, content: None, Redactor({}), 30)
            began = time.perf_counter()
            kernel.stop_strays()
            times.append(time.perf_counter() - began)
    finally:
        kernel.discard()
    return none, statistics.median(times) * 1e3, summed, cgroup


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=30, help="warm runs per variant")
    parser.add_argument("--starts", type=int, default=5, help="cold starts per variant")
    args = parser.parse_args(argv)
    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "outputs").mkdir()
        stock = _cold_ms(_plain_kernel(work), args.starts)
        plain = _cold_ms(_sandboxed_kernel(work, "unsafe-local"), args.starts)
        rows.append(("cold start: stock python3 kernel (TCP)", f"{stock:.0f} ms",
                     f"{stock / plain:.2f}x"))
        rows.append(("cold start: same kernel, IPC, no sandbox", f"{plain:.0f} ms", "1.00x"))
        for backend, goal in (("bwrap", 100), ("podman", 300)):
            if shutil.which(backend) is None:
                rows.append((f"cold start: {backend}", "not installed", "-"))
                continue
            cold = _cold_ms(_sandboxed_kernel(work, backend), args.starts)
            rows.append((f"cold start: {backend} (goal <= +{goal} ms)",
                         f"{cold:.0f} ms (+{cold - plain:.0f} ms)", f"{cold / plain:.2f}x"))
        cwd = os.getcwd()
        (work / "ws").mkdir()
        try:
            warm, recorded, direct = _warm(work / "ws", args.repeat)
        finally:
            os.chdir(cwd)
        rows.append(("cell run directly", f"{direct:.2f} ms", "1.00x"))
        rows.append(("warm %%secure_train, bwrap (goal <= +20 ms)",
                     f"{warm:.1f} ms (+{warm - direct:.1f} ms)", f"{warm / direct:.0f}x"))
        rows.append(("  ... waiting until its records are durable",
                     f"{recorded:.1f} ms (+{recorded - direct:.1f} ms)",
                     f"{recorded / direct:.0f}x"))
        for files, size in ((1, 1 << 10), (100, 1 << 20)):
            ours, ref = _vetting(work, files, size, max(3, args.starts))
            rows.append((f"vet outputs: {files} x {size >> 10} KiB (vs shutil.copytree)",
                         f"{ours:.1f} ms (ref {ref:.1f} ms)", f"{ours / ref:.2f}x"))
        if shutil.which("bwrap") is not None:
            none, ten, summed, cgroup = _cleanup(work, max(3, args.starts))
            rows.append(("end stray processes: none / ten", f"{none:.2f} ms / {ten:.1f} ms",
                         "-"))
            rows.append(("CPU-time check, 12 processes: pid namespace (vs cgroup)",
                         f"{summed:.2f} ms" + (f" (ref {cgroup:.2f} ms)" if cgroup else ""),
                         f"{summed / cgroup:.1f}x" if cgroup else "-"))
    width = max(len(r[0]) for r in rows)
    for name, value, ratio in rows:
        print(f"{name:<{width}}  {value:>26}  {ratio:>7}")


if __name__ == "__main__":
    main()
