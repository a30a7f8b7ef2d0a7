"""What a run records: one audit entry per cell, SLSA provenance, the signed output.

The provenance is signed by the workspace's record key (``Workspace.attest``)
and embedded in the output notebook (``metadata.securenb.provenance``); the
notebook is then signed in the ``executed`` scope, so the signature covers the
provenance too. The provenance names the output notebook by its *content*
digest: the notebook without ``metadata.securenb`` (which holds the
provenance and the signature, and cannot be in its own digest).
"""

from __future__ import annotations

import json
import os
import platform
import stat
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from securenb.core.attest import Dependency, RunProvenance, Subject
from securenb.core.canonical import canonical_json, sha256_hex
from securenb.core.store import file_sha256, now_rfc3339
from securenb.core.workspace import Workspace
from securenb.isolation.spec import SandboxSpec
from securenb.runs import params as params_mod

BUILD_TYPE = "papermill"
RUN_KIND = "papermill"
PROVENANCE_FIELD = "provenance"


def content(nb: dict[str, Any]) -> dict[str, Any]:
    """The notebook as its provenance digests it: nbformat's form, no ``metadata.securenb``."""
    from securenb.signing.notebook import unsigned

    clean = unsigned(nb)
    clean.get("metadata", {}).pop("securenb", None)
    return clean


def content_digest(nb: dict[str, Any]) -> str:
    return sha256_hex(canonical_json(content(nb)))


def cell_digests(cell: dict[str, Any]) -> dict[str, str]:
    """Digests of a cell's source and of its outputs (nbformat's in-memory form)."""
    source = cell.get("source", "")
    if isinstance(source, list):
        source = "".join(source)
    return {"source": sha256_hex(canonical_json(source)),
            "outputs": sha256_hex(canonical_json(cell.get("outputs", [])))}


@dataclass
class CellRecord:
    """One executed cell, as its audit entry and the provenance record it."""

    index: int
    cell_id: str | None
    cell_type: str
    start: str
    end: str = ""
    status: str = "running"
    source: str = ""
    outputs: str = ""
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = {"index": self.index, "id": self.cell_id, "type": self.cell_type,
                "start": self.start, "end": self.end, "status": self.status,
                "source": self.source, "outputs": self.outputs}
        if self.error:
            data["error"] = self.error
        return data


@dataclass
class RunInputs:
    """What the run was asked to do: recorded as the provenance's external parameters."""

    notebook: Path
    output: Path | None
    parameters: dict[str, Any]
    kernel: str
    sandbox: SandboxSpec
    kernelspec: dict[str, Any]
    cwd: Path
    execution_timeout: int | None = None
    unsafe_requested: bool = False


@dataclass
class RunRecorder:
    """Records one run into ``ws``: start, each cell, and the end with its provenance."""

    ws: Workspace
    inputs: RunInputs
    run_id: str = field(default_factory=lambda: f"run-{uuid.uuid4().hex[:16]}")
    started: str = field(default_factory=now_rfc3339)
    cells: list[CellRecord] = field(default_factory=list)
    _before: dict[str, tuple[int, int, int, int]] = field(default_factory=dict)
    audit_index: int = 0
    started_run: bool = False
    deps: list[Dependency] = field(default_factory=list)

    # -- during the run ---------------------------------------------------------
    def snapshot(self) -> None:
        """Note what the output folder holds before the kernel starts."""
        self._before = self._output_files()

    def start(self, deps: list[Dependency]) -> None:
        """Open the run record (the inputs hashed by ``dependencies``)."""
        self.deps, self.started_run = deps, True
        self.ws.store.start_run(self.run_id, RUN_KIND)
        sandbox = self.inputs.sandbox
        self.audit_index = self.ws.audit("run.start", f"run:{self.run_id}", {
            "notebook": self.ws.relpath(self.inputs.notebook),
            "notebook_sha256": deps[0].sha256,
            "parameters": params_mod.to_text(self.inputs.parameters),
            "backend": sandbox.backend, "unsafe": sandbox.unsafe,
            "secrets": list(sandbox.secret_names), "gpus": sandbox.gpus,
        }).index

    def cell_started(self, index: int, cell: dict[str, Any]) -> None:
        self.cells.append(CellRecord(index, cell.get("id"), cell.get("cell_type", ""),
                                     now_rfc3339()))

    def cell_finished(self, index: int, cell: dict[str, Any], status: str) -> None:
        """Audit the cell now: start, end, status, digests of its source and outputs."""
        record = next((c for c in self.cells if c.index == index), None)
        if record is None:
            record = CellRecord(index, cell.get("id"), cell.get("cell_type", ""), now_rfc3339())
            self.cells.append(record)
        digests = cell_digests(_plain(cell))
        record.end, record.status = now_rfc3339(), status
        record.source, record.outputs = digests["source"], digests["outputs"]
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        record.error = errors[0].get("ename") if errors else None
        self.ws.audit("run.cell", f"sha256:{record.source}",
                      {"run": self.run_id, **record.to_json()})

    # -- at the end -------------------------------------------------------------
    def provenance(self, nb: dict[str, Any], status: str, exit_code: int,
                   error: dict[str, Any] | None) -> tuple[dict[str, Any], str]:
        """Record the artifacts, attest the run; (signed envelope, its digest)."""
        finished = now_rfc3339()
        artifacts = self._artifacts()
        inputs, sandbox, ws = self.inputs, self.inputs.sandbox, self.ws
        result: dict[str, Any] = {"status": status, "exitCode": exit_code}
        if error:
            result["error"] = error
        final_cells = [{"index": i, "id": c.get("id"), "type": c.get("cell_type"),
                        **cell_digests(c)} for i, c in enumerate(content(nb)["cells"])]
        byproducts: list[dict[str, Any]] = [
            {"name": "result", "annotations": result},
            {"name": "cells", "annotations": {"cells": final_cells}},
            {"name": "executed", "annotations": {"cells": [c.to_json() for c in self.cells]}},
        ]
        byproducts += [{"name": a.name, "annotations": {"skipped": why}}
                       for a, why in artifacts if why]
        out_name = ws.relpath(inputs.output) if inputs.output else "<in memory>"
        provenance = RunProvenance(
            build_type=BUILD_TYPE, run_id=self.run_id, started=self.started, finished=finished,
            external_parameters={
                "notebook": {"path": ws.relpath(inputs.notebook),
                             "sha256": self.deps[0].sha256},
                "output": out_name,
                "parameters": params_mod.to_text(inputs.parameters),
                "kernel": inputs.kernel,
                "isolation": sandbox.backend,
                "gpus": sandbox.gpus,
                "secrets": list(sandbox.secret_names),
                "cwd": ws.relpath(inputs.cwd),
                "outputDir": (os.path.relpath(sandbox.output_dir, inputs.cwd)
                              if sandbox.output_dir else None),
                "executionTimeout": inputs.execution_timeout,
            },
            internal_parameters={
                "sandbox": sandbox.to_json(), "unsafe": sandbox.unsafe,
                "unsafeRequested": inputs.unsafe_requested,
                "kernelspec": sha256_hex(canonical_json(inputs.kernelspec)),
                "python": platform.python_version(),
                "policy": ws.policy.digest(),
                "auditFrom": self.audit_index,
            },
            dependencies=self.deps, builder=sandbox.backend, byproducts=byproducts,
        )
        subjects = [Subject(out_name, content_digest(nb))]
        subjects += [Subject(a.name, a.sha256) for a, why in artifacts if not why]
        record = ws.attest(provenance.statement(subjects))
        envelope = json.loads(ws.store.get_blob(record.envelope))
        return envelope, record.envelope

    def finish(self, status: str, exit_code: int, provenance: str | None,
               output: Path | None) -> None:
        """Close the run record and audit its end (also for a killed run)."""
        self.ws.store.finish_run(self.run_id, status, provenance)
        self.ws.audit("run.finish", f"run:{self.run_id}", {
            "status": status, "exitCode": exit_code, "cells": len(self.cells),
            "output": self.ws.relpath(output) if output else None,
            "provenance": f"sha256:{provenance}" if provenance else None,
        })

    # -- inputs and outputs ---------------------------------------------------------
    def dependencies(self) -> list[Dependency]:
        """The notebook, the kernel, its environment, and input files named by parameters.

        Hashed while the kernel starts (on another thread: it touches no database).
        """
        from securenb.isolation.train import environment

        inputs = self.inputs
        deps = [Dependency(inputs.notebook.resolve().as_uri(),
                           file_sha256(inputs.notebook)[0], "notebook"),
                Dependency(f"kernelspec:{inputs.kernel}",
                           sha256_hex(canonical_json(inputs.kernelspec)), "kernel"),
                environment(inputs.sandbox)]
        for name, path in input_files(inputs.parameters, inputs.cwd):
            deps.append(Dependency(path.as_uri(), file_sha256(path)[0], f"parameter:{name}"))
        return deps

    def _output_files(self) -> dict[str, tuple[int, int, int, int]]:
        """(inode, size, mtime, ctime) of each file in the output folder; links not followed.

        A file is the run's artifact when this changed, even if its bytes did not.
        """
        folder = self.inputs.sandbox.output_dir
        if folder is None or not os.path.isdir(folder):
            return {}
        return {str(entry): _stamp(entry.lstat()) for entry in _walk(Path(folder))}

    def _artifacts(self) -> list[tuple[Subject, str]]:
        """Files the run wrote (new or changed), recorded; links and specials are named."""
        folder = self.inputs.sandbox.output_dir
        if folder is None or not os.path.isdir(folder):
            return []
        out: list[tuple[Subject, str]] = []
        for entry in _walk(Path(folder)):
            info = entry.lstat()
            name = f"{self.ws.relpath(entry.parent)}/{entry.name}"  # a link's own name
            if not stat.S_ISREG(info.st_mode):
                if str(entry) not in self._before:
                    out.append((Subject(name, "0" * 64), "not a regular file (never followed)"))
                continue
            if self._before.get(str(entry)) == _stamp(info):
                continue  # there before, untouched
            artifact = self.ws.record_artifact(entry, run_id=self.run_id)
            out.append((Subject(name, artifact.digest), ""))
        return out


def _stamp(info: os.stat_result) -> tuple[int, int, int, int]:
    return info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns


def _walk(folder: Path) -> list[Path]:
    """Every entry under ``folder``, without descending into linked folders."""
    out = []
    for root, dirs, files in os.walk(folder, followlinks=False):
        base = Path(root)
        out += [base / d for d in dirs if (base / d).is_symlink()]
        out += [base / f for f in files]
    return sorted(out)


def input_files(parameters: dict[str, Any], cwd: Path) -> list[tuple[str, Path]]:
    """Parameters whose string value names an existing file (relative to the run's folder)."""
    out = []
    for name, value in sorted(parameters.items()):
        if isinstance(value, str) and value and "\0" not in value:
            path = (cwd / value) if not os.path.isabs(value) else Path(value)
            if path.is_file():
                out.append((name, path.resolve()))
    return out


def _plain(cell: Any) -> dict[str, Any]:
    """A cell as plain JSON (NotebookNode and lists of lines, joined as nbformat does)."""
    import nbformat
    from nbformat.v4.rwbase import rejoin_lines

    node = json.loads(json.dumps(cell))
    wrapper = rejoin_lines(nbformat.from_dict({"cells": [node]}))  # type: ignore[no-untyped-call]
    return wrapper["cells"][0]  # type: ignore[no-any-return]
