"""Many runs: a parameter grid over one notebook, or every notebook of a folder.

Each run is its own `securenb run` process (its own kernel, sandbox, record and
signed output), at most ``jobs`` at a time. Parameters travel as JSON text
(``--parameters-json``), so their types are exactly the batch's. Each output is
verified by the parent as its run ends: the summary's verdict is that check.
A batch that is interrupted (Ctrl-C, or SIGTERM as CI cancels) starts no further
run and terminates those running, which each record themselves as killed.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from securenb.core.workspace import Workspace
from securenb.errors import SecurenbError
from securenb.runs import params as params_mod

_RUN = "from securenb.cli.main import main; main()"


@dataclass
class BatchItem:
    """One run of the batch and, once it ended, how."""

    notebook: Path
    output: Path
    parameters: dict[str, Any]
    output_dir: str
    status: str = "pending"  # completed | failed | error
    run_id: str | None = None
    seconds: float = 0.0
    verdict: str = ""
    error: str | None = None
    problems: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "notebook": str(self.notebook),
                "output": str(self.output), "parameters": self.parameters,
                "output_dir": self.output_dir,
                "status": self.status, "seconds": round(self.seconds, 3),
                "verdict": self.verdict, "error": self.error, "problems": self.problems}


def parse_grid(entries: Iterable[str]) -> dict[str, list[Any]]:
    """``NAME=V1,V2`` (typed as ``-p`` types) or ``NAME=[JSON list]``, one per option."""
    from papermill.cli import _resolve_type

    grid: dict[str, list[Any]] = {}
    for entry in entries:
        name, sep, values = entry.partition("=")
        if not sep or not name.isidentifier() or not values:
            raise SecurenbError(f"--grid {entry!r}: expected NAME=V1,V2,... or NAME=[json list]")
        if values.startswith("["):
            try:
                parsed = json.loads(values)
            except ValueError as exc:
                raise SecurenbError(f"--grid {name}: invalid JSON list ({exc})") from None
            if not isinstance(parsed, list) or not parsed:
                raise SecurenbError(f"--grid {name}: a non-empty JSON list is needed")
            grid[name] = parsed
        else:
            grid[name] = [_resolve_type(v) for v in values.split(",")]
    return grid


def plan(source: Path, out_dir: Path, base: dict[str, Any], grid: dict[str, list[Any]],
         outputs: str = "outputs") -> list[BatchItem]:
    """The runs: every notebook of a folder, each over every combination of the grid.

    Each run writes its files to its own folder ``outputs/<output name>``: runs side by
    side in one folder could not otherwise tell their artifacts apart.
    """
    notebooks = sorted(source.glob("*.ipynb")) if source.is_dir() else [source]
    if not notebooks:
        raise SecurenbError(f"{source}: no notebooks (*.ipynb) to run")
    combos = [dict(zip(grid, values, strict=True))
              for values in itertools.product(*grid.values())] or [{}]
    items = []
    for notebook in notebooks:
        for index, combo in enumerate(combos):
            parameters = {**base, **combo}
            params_mod.check(parameters)
            name = notebook.stem if len(combos) == 1 else f"{notebook.stem}-{index:03d}"
            items.append(BatchItem(notebook, out_dir / f"{name}.ipynb", parameters,
                                   f"{outputs}/{name}"))
    return items


class _Children:
    """The runs under way; once stopped, none starts and each running one is terminated."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._procs: set[subprocess.Popen[str]] = set()
        self.stopped = False

    def start(self, cmd: list[str]) -> subprocess.Popen[str] | None:
        with self._lock:
            if self.stopped:
                return None
            # a session of its own: a terminal's Ctrl-C reaches the batch alone, which then
            # sends each run one SIGTERM (a second signal could cut its record short)
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True, start_new_session=True)
            self._procs.add(proc)
            return proc

    def done(self, proc: subprocess.Popen[str]) -> None:
        with self._lock:
            self._procs.discard(proc)

    def stop(self) -> None:
        """SIGTERM: each `securenb run` audits itself as killed and removes its scratch."""
        with self._lock:
            self.stopped = True
            for proc in self._procs:
                proc.terminate()


def run_batch(ws: Workspace, items: list[BatchItem], *, jobs: int, options: list[str],
              on_done: Callable[[BatchItem], None] | None = None) -> list[BatchItem]:
    """Run ``items``, ``jobs`` at a time; verify each output as it is written."""
    from securenb.signing import service

    if jobs < 1:
        raise SecurenbError("--jobs must be at least 1")
    for item in items:
        item.output.parent.mkdir(parents=True, exist_ok=True)
    children = _Children()
    with ThreadPoolExecutor(jobs, thread_name_prefix="securenb-batch") as pool:
        futures: dict[Future[None], BatchItem] = {
            pool.submit(_run_one, ws.root, item, options, children): item for item in items}
        try:
            _collect(ws, futures, service, on_done)
        except BaseException:  # interrupted: the pool waits for the terminated runs
            children.stop()
            for future in futures:
                future.cancel()
            raise
    return items


def _collect(ws: Workspace, futures: dict[Future[None], BatchItem], service: Any,
             on_done: Callable[[BatchItem], None] | None) -> None:
    for future in as_completed(futures):
        item = futures[future]
        future.result()
        if item.output.exists() and item.status in ("completed", "failed"):
            # on this thread (one database handle); the status column says a run failed
            result = service.verify(ws, item.output, allow_failed=True)
            item.verdict = "verified" if result.verified else "NOT VERIFIED"
            item.problems = list(result.problems)
        else:
            item.verdict = "no output"
        if on_done is not None:
            on_done(item)


def _run_one(root: Path, item: BatchItem, options: list[str], children: _Children) -> None:
    began = time.perf_counter()
    cmd = [sys.executable, "-c", _RUN, "-C", str(root), "run", str(item.notebook),
           str(item.output), "--json", "--no-progress-bar",
           "--parameters-json", params_mod.to_text(item.parameters),
           "--output-dir", item.output_dir, *options]
    proc = children.start(cmd)
    if proc is None:
        item.status, item.error = "error", "not started: the batch was interrupted"
        return
    try:
        stdout, stderr = proc.communicate()
    finally:
        children.done(proc)
    item.seconds = time.perf_counter() - began
    try:
        data = json.loads(stdout)
    except ValueError:
        lines = stderr.strip().splitlines()
        item.status, item.error = "error", lines[-1] if lines else f"exit {proc.returncode}"
        return
    item.status, item.run_id, item.error = data["status"], data["run_id"], data["error"]
