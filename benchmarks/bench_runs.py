"""Runs: `securenb run` against plain `papermill`, same notebook, same kernel, same sandbox.

Goal (runs issue): the overhead of `securenb run` over `papermill -k securenb-bwrap`
on the example notebook (notebooks/03-papermill-run.ipynb) is <= 5% + 0.5 s.

Each row is a whole process, as a user runs it (interpreter start and imports
included): plain papermill with the isolated kernelspec (installed under a
temporary prefix), papermill with `--engine securenb`, and `securenb run`; the
median of ``--rounds`` runs, interleaved. The parts table times the securenb
steps inside one in-process run (exclusive times): unlock (the keys' KDF) and
input hashing run on a second thread while the kernel starts, so only the wait
for them is on the critical path.

    python -m benchmarks runs               # or: python -m benchmarks.bench_runs --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PASSPHRASE = "benchmark passphrase"  # a throwaway workspace's passphrase
REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "notebooks" / "03-papermill-run.ipynb"
BIN = Path(sys.executable).parent
ARGS = ("-p", "lr", "0.1", "-p", "epochs", "200")

_PARTS = """
import functools, json, sys, threading, time
from pathlib import Path
import papermill.engines
from securenb.runs import api, engine, record
from securenb.core.workspace import Workspace
from securenb.signing import notebook as signing_nb, record as signing_record

totals, local = {}, threading.local()  # one stack per thread: the unlock runs on its own

def timed(owner, name, part):
    original = getattr(owner, name)
    @functools.wraps(original)
    def wrapper(*args, **kwargs):
        stack = local.__dict__.setdefault("stack", [])
        began = time.perf_counter()
        stack.append(0.0)
        try:
            return original(*args, **kwargs)
        finally:
            spent = time.perf_counter() - began
            inner = stack.pop()
            totals[part] = totals.get(part, 0.0) + spent - inner
            if stack:
                stack[-1] += spent
    setattr(owner, name, wrapper)

timed(Workspace, "audit", "audit (entry per cell, start, finish)")
timed(Workspace, "attest", "signing (provenance DSSE, record key)")
timed(engine._Run, "_sign", "signing (notebook, executed scope)")
timed(record.RunRecorder, "_artifacts", "hashing (artifacts)")
timed(record.RunRecorder, "provenance", "hashing (notebook content, cells)")
timed(engine._Run, "begin", "waiting for unlock + input hashing")
timed(engine._Run, "prepare", "preparing (policy, sandbox spec)")
timed(engine, "_unlock_and_hash", "[thread] unlock + input hashing")
began = time.perf_counter()
result = api.run_notebook(Path(sys.argv[1]), Path("parts.ipynb"), {"lr": 0.1, "epochs": 200},
                          progress_bar=False)
assert result.status == "completed", result
print(json.dumps({"total": time.perf_counter() - began, "parts": totals}))
"""


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    began = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    spent = time.perf_counter() - began
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    return spent


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench_runs")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    from securenb.core.workspace import Workspace
    from securenb.isolation import kernelspecs

    tmp = Path(tempfile.mkdtemp(prefix="securenb-bench-runs-"))
    try:
        project = tmp / "project"
        project.mkdir()
        Workspace.init(project, PASSPHRASE)
        shutil.copy(EXAMPLE, project / EXAMPLE.name)
        kernelspecs.install("bwrap", prefix=str(tmp / "prefix"))
        env = {**os.environ, "SECURENB_KEY_PASSPHRASE": PASSPHRASE,
               "JUPYTER_PATH": str(tmp / "prefix" / "share" / "jupyter")}
        nb = EXAMPLE.name
        commands = {
            "papermill -k securenb-bwrap": [str(BIN / "papermill"), nb, "plain.ipynb", "-k",
                                            "securenb-bwrap", "--no-progress-bar", *ARGS],
            "papermill --engine securenb": [str(BIN / "papermill"), "--engine", "securenb", nb,
                                            "engine.ipynb", "--no-progress-bar", *ARGS],
            "securenb run": [str(BIN / "securenb"), "run", nb, "run.ipynb",
                             "--no-progress-bar", *ARGS],
        }
        times: dict[str, list[float]] = {name: [] for name in commands}
        _run(commands["papermill -k securenb-bwrap"], project, env)  # warm the page cache
        for _ in range(args.rounds):
            for name, cmd in commands.items():
                times[name].append(_run(cmd, project, env))
        base = statistics.median(times["papermill -k securenb-bwrap"])
        goal = 0.05 * base + 0.5
        print(f"example notebook, bwrap sandbox, median of {args.rounds} (whole processes)")
        print(f"{'command':32} {'wall s':>8} {'overhead s':>11} {'ratio':>7}")
        for name, values in times.items():
            median = statistics.median(values)
            print(f"{name:32} {median:8.2f} {median - base:11.2f} {median / base:7.3f}")
        overhead = statistics.median(times["securenb run"]) - base
        verdict = "meets" if overhead <= goal else "MISSES"
        print(f"goal: overhead <= 5% + 0.5 s = {goal:.2f} s; securenb run {verdict} it "
              f"({overhead:+.2f} s)")
        proc = subprocess.run([sys.executable, "-c", _PARTS, nb], cwd=project, env=env,
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"parts run failed:\n{proc.stderr[-2000:]}")
        data = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"\nparts of one in-process securenb run ({data['total']:.2f} s in all)")
        for part, seconds in sorted(data["parts"].items(), key=lambda kv: -kv[1]):
            print(f"  {part:44} {seconds:6.3f} s")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:])
