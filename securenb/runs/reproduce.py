"""Re-run a signed run output with what its provenance recorded; compare bit for bit.

The output must verify first (signature, provenance, audit): a reproduction of
an edited record proves nothing. The recorded notebook, input files and Python
environment must still be what the provenance names; otherwise the report says
why the run could not be reproduced (``--force`` runs anyway). The re-run is an
ordinary signed run; its cells and artifacts are compared by digest with the
original's: identical, differs, missing or new.

The re-run writes to the same ``outputs/`` folder, so artifacts are compared
with the digests the original provenance recorded, not with files on disk.

The record is someone else's: what would choose how the notebook runs here
(sandbox, GPUs, secrets) is taken from the person reproducing (``Settings``,
else the policy), as for ``securenb run``, never from the record; a recorded
setting that differs is a reason it could not reproduce. A record without a
sandbox (``unsafe-local``) is re-run only when ``--isolation unsafe-local`` is
given. Recorded paths outside the project are refused.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from securenb.core.store import file_sha256
from securenb.core.workspace import Workspace
from securenb.errors import SecurenbError
from securenb.runs import params as params_mod
from securenb.runs.api import RunResult, run_notebook
from securenb.runs.record import cell_digests, content
from securenb.runs.verify import unverified_statement
from securenb.signing.notebook import read_notebook


@dataclass
class Reproduction:
    """What came out identical, what differs, and why a run could not be reproduced."""

    original: str
    reproduced: str | None
    verdict: str = "could not reproduce"  # reproduced | differs | could not reproduce
    reasons: list[str] = field(default_factory=list)
    cells: list[dict[str, Any]] = field(default_factory=list)
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    run: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {"original": self.original, "reproduced": self.reproduced,
                "verdict": self.verdict, "reasons": self.reasons, "cells": self.cells,
                "artifacts": self.artifacts, "run": self.run}


@dataclass(frozen=True)
class Settings:
    """How the re-run may run, as typed by the person reproducing (``securenb run``'s options)."""

    isolation: str | None = None
    gpus: int | str | None = None
    secrets: tuple[str, ...] = ()


def reproduce(ws: Workspace, original: Path, output: Path | None = None, *,
              force: bool = False, progress_bar: bool = True,
              settings: Settings = Settings()) -> Reproduction:
    """Re-run ``original`` (a signed run output) and compare; see the module docstring."""
    from securenb.signing import service

    checked = service.verify(ws, original, allow_failed=True)  # a failure reproduces too
    report = Reproduction(str(original), None)
    if not checked.verified:
        report.reasons = [f"the output does not verify: {p}" for p in checked.problems]
        return report
    nb = read_notebook(original)
    statement = unverified_statement(nb)  # verified above, as part of the notebook
    definition = statement["predicate"]["buildDefinition"]
    ext = definition["externalParameters"]
    parameters = params_mod.from_text(ext["parameters"])
    notebook = _inside(ws, ext["notebook"]["path"], "input notebook")
    cwd = _inside(ws, ext["cwd"], "run folder")
    backend = _backend(ws, ext, settings)
    report.reasons = _missing_inputs(ws, notebook, ext["notebook"]["sha256"],
                                     definition["resolvedDependencies"], cwd)
    report.reasons += _setting_changes(ws, ext, settings, backend)
    if not report.reasons:
        report.reasons += _environment_changes(definition, cwd, backend)
    if report.reasons and not force:
        return report
    output = output or original.with_name(f"{original.stem}.reproduced.ipynb")
    result = run_notebook(
        notebook, output, parameters, isolation=settings.isolation, gpus=settings.gpus,
        secrets=settings.secrets, cwd=cwd, workspace=ws.root, progress_bar=progress_bar,
        execution_timeout=ext.get("executionTimeout"), output_dir=ext.get("outputDir"))
    report.reproduced, report.run = str(output), result.to_json()
    _compare(report, nb, statement, read_notebook(output), result)
    return report


def _inside(ws: Workspace, recorded: str, what: str) -> Path:
    """A recorded path, only inside this project (the record may come from anyone)."""
    path = (ws.root / recorded).resolve()
    if path != ws.root.resolve() and ws.root.resolve() not in path.parents:
        raise SecurenbError(f"the record's {what} {recorded} is outside the project; "
                         "reproduce runs only what is in it")
    return path


def _backend(ws: Workspace, ext: dict[str, Any], settings: Settings) -> str:
    """The sandbox of the re-run: the one named now, else the policy's; never the record's."""
    recorded = ext.get("isolation")
    if recorded == "unsafe-local" and settings.isolation != "unsafe-local":
        raise SecurenbError("the run had no sandbox (unsafe-local); reproduce runs it without one "
                         "only when told: --isolation unsafe-local (or --isolation BACKEND)")
    from securenb.runs.kernel import backend_for

    return backend_for(None, settings.isolation, ws.policy.isolation.backend)


def _setting_changes(ws: Workspace, ext: dict[str, Any], settings: Settings,
                     backend: str) -> list[str]:
    """Recorded settings the re-run does not have: each is a reason, naming the option."""
    reasons = []
    if ext.get("isolation") != backend:
        reasons.append(f"the run had sandbox {ext.get('isolation')}, the reproduction "
                       f"{backend} (--isolation {ext.get('isolation')})")
    gpus = ws.policy.isolation.gpus if settings.gpus is None else settings.gpus
    if ext.get("gpus") != gpus:
        reasons.append(f"the run had GPUs {ext.get('gpus')}, the reproduction {gpus} "
                       f"(--gpus {ext.get('gpus')})")
    given = {s.split("=", 1)[0] for s in settings.secrets}
    missing = [str(n) for n in ext.get("secrets") or () if n not in given]
    if missing:
        reasons.append(f"the run had secret(s) {', '.join(missing)}, not given to the "
                       "reproduction (--secret NAME[=SOURCE]; never taken from the record)")
    return reasons


def _missing_inputs(ws: Workspace, notebook: Path, sha256: str, deps: list[dict[str, Any]],
                    cwd: Path) -> list[str]:
    reasons = []
    if not notebook.is_file():
        reasons.append(f"input notebook {notebook} is missing")
    elif file_sha256(notebook)[0] != sha256:
        reasons.append(f"input notebook {notebook} changed since the run (sha256 "
                       f"{file_sha256(notebook)[0][:16]}, recorded {sha256[:16]})")
    if not cwd.is_dir():
        reasons.append(f"the run's folder {cwd} is missing")
    for dep in deps:
        if not str(dep.get("name", "")).startswith("parameter:"):
            continue
        path = Path(dep["uri"].removeprefix("file://"))
        root = ws.root.resolve()
        if root not in path.resolve().parents:
            reasons.append(f"input {path} ({dep['name']}) is outside the project")
        elif not path.is_file():
            reasons.append(f"input {path} ({dep['name']}) is missing")
        elif file_sha256(path)[0] != dep["digest"]["sha256"]:
            reasons.append(f"input {path} ({dep['name']}) changed since the run")
    return reasons


def _environment_changes(definition: dict[str, Any], cwd: Path,
                         backend: str | None = None) -> list[str]:
    """The kernel's environment (packages, or image) in ``backend`` (default: the recorded
    one) must be the one the run had, by digest."""
    from securenb.isolation.train import environment
    from securenb.runs.kernel import sandbox_manager

    recorded = next((d for d in definition["resolvedDependencies"]
                     if d.get("name") in ("environment", "image")), None)
    if recorded is None:
        return ["the provenance records no environment digest"]
    backend = backend or definition["externalParameters"]["isolation"]
    try:
        _, sandbox = sandbox_manager(backend, cwd, gpus=None, secret_names=(), secret_env={})
        now = environment(sandbox)
    except SecurenbError as exc:
        return [f"cannot check the environment ({exc})"]
    if now.sha256 != recorded["digest"]["sha256"]:
        return [f"different environment: {now.uri} has digest {now.sha256[:16]}, the run had "
                f"{recorded['uri']} with {recorded['digest']['sha256'][:16]}"]
    return []


def _compare(report: Reproduction, original: dict[str, Any], statement: dict[str, Any],
             again: dict[str, Any], result: RunResult) -> None:
    before = content(original)["cells"]
    after = content(again)["cells"]
    differ = 0
    for index in range(max(len(before), len(after))):
        if index >= len(before) or index >= len(after):
            status = "new" if index >= len(before) else "missing"
            report.cells.append({"index": index, "outputs": status})
            differ += 1
            continue
        a, b = cell_digests(before[index]), cell_digests(after[index])
        same = a["outputs"] == b["outputs"] and a["source"] == b["source"]
        differ += not same
        report.cells.append({"index": index, "id": before[index].get("id"),
                             "type": before[index].get("cell_type"),
                             "source": "identical" if a["source"] == b["source"] else "differs",
                             "outputs": "identical" if a["outputs"] == b["outputs"]
                             else "differs"})
    recorded = {s["name"]: s["digest"]["sha256"] for s in statement["subject"][1:]}
    produced = {s["name"]: s["digest"]["sha256"]
                for s in unverified_statement(again)["subject"][1:]}
    for name in sorted(set(recorded) | set(produced)):
        if name not in produced:
            status = "not written again"
        elif name not in recorded:
            status = "new"
        else:
            status = "identical" if recorded[name] == produced[name] else "differs"
        differ += status != "identical"
        report.artifacts.append({"name": name, "status": status,
                                 "recorded": recorded.get(name), "reproduced": produced.get(name)})
    if result.status != _status(statement):
        report.reasons.append(f"the run {_status(statement)}, the reproduction {result.status}")
        differ += 1
    report.verdict = "reproduced" if not differ and not report.reasons else "differs"


def _status(statement: dict[str, Any]) -> str:
    items = statement["predicate"]["runDetails"]["byproducts"]
    result: dict[str, Any] = next(
        (b["annotations"] for b in items if b.get("name") == "result"), {})
    return str(result.get("status"))


def render_lines(report: Reproduction) -> list[str]:
    """A short human report: verdict, reasons, then each cell and artifact that differs."""
    lines = [f"{report.verdict.upper()}: {report.original}"
             + (f" -> {report.reproduced}" if report.reproduced else "")]
    lines += [f"  reason: {r}" for r in report.reasons]
    same_cells = sum(1 for c in report.cells if c.get("outputs") == "identical"
                     and c.get("source", "identical") == "identical")
    if report.cells:
        lines.append(f"  cells: {same_cells}/{len(report.cells)} bit-identical")
    for cell in report.cells:
        if cell.get("outputs") != "identical" or cell.get("source", "identical") != "identical":
            lines.append(f"  cell #{cell['index'] + 1}: " + json.dumps(
                {k: v for k, v in cell.items() if k in ("source", "outputs", "id")}))
    for art in report.artifacts:
        lines.append(f"  artifact {art['name']}: {art['status']}")
    return lines
