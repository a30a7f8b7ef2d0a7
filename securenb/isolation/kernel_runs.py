"""Whole-notebook isolated kernels recorded as runs, like ``%%secure_train`` cells.

A kernel started from an isolated kernelspec (JupyterLab's launcher, papermill
``-k securenb-bwrap``) is one run: it starts when the sandbox does and ends
when the kernel stops, at which point what it wrote is copied out of its
outbox and recorded (artifacts, SLSA provenance signed by the workspace, an
audit entry), as for a cell. The provisioner does not see the code the
kernel ran, so the provenance names the sandbox, its mounts and the software
environment, not cells. Outside a workspace nothing is recorded.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

from securenb.core.store import now_rfc3339
from securenb.core.workspace import Workspace
from securenb.errors import WorkspaceError
from securenb.isolation import transfer
from securenb.isolation.outbox import Collected
from securenb.isolation.session import session_notebook
from securenb.isolation.spec import SandboxSpec
from securenb.isolation.subkernel import Reply
from securenb.isolation.train import RunRecord, RunResult, environment

RUN_KIND = "isolated_kernel"
BUILD_TYPE = "isolated-kernel"


@dataclass
class KernelRun:
    root: Path
    run_id: str
    started: str
    spec: SandboxSpec
    notebook: str | None = None  # the notebook it serves, relative to the workspace root

    @classmethod
    def begin(cls, spec: SandboxSpec, session: str | None = None) -> KernelRun | None:
        """The run of a kernel starting now (for the ``JPY_SESSION_NAME`` ``session``), or
        None outside a workspace."""
        try:
            ws = Workspace.find(Path(spec.workdir))
        except WorkspaceError:
            return None
        notebook = session_notebook(ws.root, session, Path(spec.workdir))
        run = cls(ws.root, uuid.uuid4().hex, now_rfc3339(), spec, notebook)
        ws.store.start_run(run.run_id, RUN_KIND)
        return run

    def end(self, collected: Collected, failure: str) -> None:
        """Record the outputs copied out of the kernel's outbox and how the kernel ended
        (``failure``: why it did not end cleanly, or "")."""
        status = "error" if failure or collected.error else "ok"
        detail = failure or (f"outputs refused: {collected.error}" if collected.error else "")
        result = RunResult(self.run_id, status, Reply(status, detail=detail),
                           self.spec.backend, None)
        result.rejected = [transfer.OutputFile(p, "", 0, "rejected", why)
                           for p, why in collected.refused]
        for item in transfer.vet(collected.files):
            (result.rejected if item.format == "rejected" else result.outputs).append(item)
        ws = Workspace(self.root)
        RunRecord(self.spec, self.run_id, self.started, now_rfc3339(), [environment(self.spec)],
                  result, {"kernelspec": self.spec.backend,
                           **({"notebook": self.notebook} if self.notebook else {})}, BUILD_TYPE,
                  "isolated_kernel.run").write(ws)
