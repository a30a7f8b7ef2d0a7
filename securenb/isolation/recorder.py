"""Run records written in order on one thread.

Recording a run is durable I/O (SQLite commits, fsynced blobs, a signed audit
checkpoint). The writer keeps its own workspace handle (SQLite connections
belong to one thread) and applies jobs strictly in submission order. The magic
``flush``es before its cell replies, so a kernel shut down or killed right
after a cell loses none of its records (a kernel gets ~2.5 s from a shutdown
request to SIGTERM); a failed job is raised on the next use, never dropped.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from pathlib import Path

from securenb.core.workspace import Workspace
from securenb.isolation.errors import IsolationError

Job = Callable[[Workspace], None]


class Recorder:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._jobs: queue.Queue[Job | None] = queue.Queue()
        self._error: BaseException | None = None
        self._opened = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"securenb-recorder:{root}",
                                        daemon=True)
        self._thread.start()
        self._opened.wait()
        self.check()

    def _loop(self) -> None:
        try:
            ws = Workspace(self.root)
            ws.unlock_records()  # now: a missing passphrase fails the first run, not later
        except BaseException as exc:
            self._error = exc
            return
        finally:
            self._opened.set()
        while (job := self._jobs.get()) is not None:
            try:
                job(ws)
            except BaseException as exc:
                self._error = self._error or exc
            finally:
                self._jobs.task_done()
        self._jobs.task_done()

    def check(self) -> None:
        """Raise the first failure of an earlier job (once)."""
        if self._error is not None:
            error, self._error = self._error, None
            raise IsolationError(f"{self.root}: recording a run failed: {error}") from error

    def submit(self, job: Job) -> None:
        self.check()
        if not self._thread.is_alive():
            raise IsolationError(f"{self.root}: the run recorder has stopped")
        self._jobs.put(job)

    def flush(self) -> None:
        """Block until every submitted record is durable."""
        if self._thread.is_alive():
            self._jobs.join()
        self.check()

    def close(self) -> None:
        if self._thread.is_alive():
            self._jobs.put(None)
            self._thread.join()
        self.check()
