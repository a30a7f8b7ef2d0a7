"""Check a run's output against its embedded provenance and the workspace's audit log.

``securenb verify OUT.ipynb`` checks the notebook signature (securenb.signing);
for a run output it then calls ``with_run_checks``: the provenance must be
signed by a trusted record key, name this notebook's content, carry the
parameters the notebook shows (same JSON types), and, when the workspace that
ran it is here, agree with the run's audit entries. Every difference is named
(which cell, source or outputs, which parameter).
"""

from __future__ import annotations

import base64
import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from securenb.core.attest import SLSA_PROVENANCE_PREDICATE, verify_envelope
from securenb.core.keys import PublicKey
from securenb.core.workspace import Workspace
from securenb.errors import SecurenbError
from securenb.runs import params as params_mod
from securenb.runs.record import BUILD_TYPE, PROVENANCE_FIELD, cell_digests, content
from securenb.signing.notebook import read_notebook
from securenb.signing.result import Verification

BUILD_TYPE_URI = f"https://securenb.dev/buildtypes/{BUILD_TYPE}/v1"


@dataclass
class RunCheck:
    """What the provenance check found: the run's facts and every problem."""

    run_id: str | None = None
    status: str | None = None
    exit_code: int | None = None
    backend: str | None = None
    unsafe: bool = False
    statement: dict[str, Any] | None = None
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def embedded_envelope(nb: dict[str, Any]) -> dict[str, Any] | None:
    ours = nb.get("metadata", {}).get("securenb")
    value = ours.get(PROVENANCE_FIELD) if isinstance(ours, dict) else None
    return value if isinstance(value, dict) else None


def unverified_statement(nb: dict[str, Any]) -> dict[str, Any]:
    """The embedded statement *without* checking its signature (reproduce reads it, then
    verifies the notebook separately); an error if there is none."""
    envelope = embedded_envelope(nb)
    if envelope is None:
        raise SecurenbError("not a run output: no metadata.securenb.provenance")
    try:
        statement = json.loads(base64.b64decode(envelope["payload"], validate=True))
    except (KeyError, TypeError, ValueError) as exc:
        raise SecurenbError(f"malformed embedded provenance ({exc})") from None
    if not isinstance(statement, dict):
        raise SecurenbError("malformed embedded provenance: not a statement")
    return statement


def check_run(path: Path, record_keys: list[PublicKey], ws: Workspace | None) -> RunCheck | None:
    """Check the embedded provenance of ``path``; None when it is not a run output."""
    nb = read_notebook(path)
    envelope = embedded_envelope(nb)
    if envelope is None:
        return None
    out = RunCheck()
    try:
        statement, _ = verify_envelope(envelope, record_keys,
                                       source=f"{path}#metadata.securenb.provenance")
    except SecurenbError as exc:
        out.problems.append(f"embedded provenance: {exc} (edited, or signed by a key that is "
                            "not a trusted record key)")
        return out
    predicate = statement.get("predicate", {})
    definition = predicate.get("buildDefinition", {})
    if (statement.get("predicateType") != SLSA_PROVENANCE_PREDICATE
            or definition.get("buildType") != BUILD_TYPE_URI):
        out.problems.append("embedded provenance is not the provenance of a securenb run")
        return out
    out.statement = statement
    details = predicate.get("runDetails", {})
    byproducts = {b.get("name"): b.get("annotations", {}) for b in details.get("byproducts", [])}
    result = byproducts.get("result", {})
    internal = definition.get("internalParameters", {})
    out.run_id = details.get("metadata", {}).get("invocationId")
    out.status, out.exit_code = result.get("status"), result.get("exitCode")
    out.backend, out.unsafe = definition.get("externalParameters", {}).get("isolation"), bool(
        internal.get("unsafe"))
    clean = content(nb)
    out.problems += _content_problems(statement, byproducts.get("cells", {}).get("cells", []),
                                      clean)
    out.problems += _parameter_problems(definition.get("externalParameters", {}), clean)
    out.notes.append(f"run {out.run_id}: {out.status} (exit {out.exit_code}), "
                     f"sandbox {out.backend}{' (UNSAFE: no isolation)' if out.unsafe else ''}")
    if result.get("error"):
        error = result["error"]
        out.notes.append(f"run failed: {error.get('ename')}: {error.get('evalue', '')}"[:300])
    if ws is not None and out.run_id:
        out.problems += _audit_problems(ws, out.run_id, internal.get("auditFrom", 0),
                                        byproducts.get("executed", {}).get("cells", []), out)
    return out


def _content_problems(statement: dict[str, Any], recorded: list[dict[str, Any]],
                      clean: dict[str, Any]) -> list[str]:
    from securenb.core.canonical import canonical_json, sha256_hex

    subject = (statement.get("subject") or [{}])[0]
    if subject.get("digest", {}).get("sha256") == sha256_hex(canonical_json(clean)):
        return []
    now = clean.get("cells", [])
    problems = []
    by_id = {c.get("id"): c for c in recorded if c.get("id")}
    seen: set[str] = set()
    for index, cell in enumerate(now):
        was = by_id.get(cell.get("id")) if cell.get("id") else (
            recorded[index] if index < len(recorded) else None)
        name = f"cell #{index + 1}" + (f" (id {cell['id']})" if cell.get("id") else "")
        if was is None:
            problems.append(f"{name} added after the run")
            continue
        seen.add(str(was.get("id")))
        digests = cell_digests(cell)
        changed = [part for part in ("source", "outputs") if was.get(part) != digests[part]]
        if changed:
            problems.append(f"{name} {' and '.join(changed)} changed since the run")
    problems += [f"cell #{c.get('index', 0) + 1} (id {c.get('id')}) of the run removed"
                 for c in recorded if c.get("id") and str(c.get("id")) not in seen]
    if not problems:
        problems.append("notebook changed since the run outside its cells "
                        "(metadata or format fields)")
    return problems


def _parameter_problems(external: dict[str, Any], clean: dict[str, Any]) -> list[str]:
    try:
        recorded = params_mod.from_text(str(external.get("parameters", "{}")))
    except (ValueError, SecurenbError):
        return ["embedded provenance: its parameters are not a JSON object"]
    shown = clean.get("metadata", {}).get("papermill", {}).get("parameters") or {}
    problems = []
    for name in sorted(set(recorded) | set(shown)):
        if name not in shown:
            problems.append(f"parameter {name!r} of the run is missing from metadata.papermill")
        elif name not in recorded:
            problems.append(f"parameter {name!r} in metadata.papermill was not given to the run")
        elif not params_mod.same(recorded[name], shown[name]):
            problems.append(f"parameter {name!r}: the run had {recorded[name]!r}, "
                            f"metadata.papermill shows {shown[name]!r}")
    return problems


def _audit_problems(ws: Workspace, run_id: str, start: int, executed: list[dict[str, Any]],
                    out: RunCheck) -> list[str]:
    """The run's audit entries must be there and say what the provenance says."""
    try:
        records = ws.audit_log.read(max(0, int(start)))
    except (SecurenbError, ValueError, TypeError) as exc:
        return [f"audit log: cannot read it ({exc})"]
    mine = [r.entry for r in records
            if r.entry.subject == f"run:{run_id}" or r.entry.details.get("run") == run_id]
    actions = [e.action for e in mine]
    if "run.start" not in actions:
        return [f"audit log: no entries for run {run_id} (another workspace ran it?)"]
    problems = []
    if "run.finish" not in actions:
        problems.append(f"audit log: run {run_id} has no run.finish entry")
    else:
        finish = next(e for e in mine if e.action == "run.finish")
        if finish.details.get("status") != out.status:
            problems.append(f"audit log: run {run_id} ended {finish.details.get('status')!r}, "
                            f"the provenance says {out.status!r}")
    cells = {e.details.get("index"): e.details for e in mine if e.action == "run.cell"}
    for cell in executed:
        logged = cells.get(cell.get("index"))
        name = f"cell #{int(cell.get('index', -1)) + 1}"
        if logged is None:
            problems.append(f"audit log: no entry for {name} of run {run_id}")
            continue
        differ = [k for k in ("source", "outputs", "status") if logged.get(k) != cell.get(k)]
        if differ:
            problems.append(f"audit log: {name} {', '.join(differ)} differ from the provenance")
    if len(cells) != len(executed):
        problems.append(f"audit log: {len(cells)} cell entries, the provenance has "
                        f"{len(executed)}")
    out.notes.append(f"audit log: {len(mine)} entries of run {run_id} checked")
    return problems


def with_run_checks(result: Verification, path: Path, ws: Workspace | None,
                    record_keys: list[PublicKey], *, allow_failed: bool = False
                    ) -> Verification:
    """``result`` of the notebook signature, plus the run checks when it is a run output.

    ``record_keys`` are the keys trusted to sign provenance (pinned, never read
    from the folder being verified). The output of a run that did not complete
    fails (``run failed (exit 1)``) unless ``allow_failed``: a signed record of a
    failed run must not pass a check that asks only "verified?".
    """
    check = check_run(Path(path), record_keys, ws)
    if check is None:
        return result
    problems = list(check.problems)
    if check.statement is not None and check.status != "completed" and not allow_failed:
        problems.insert(0, f"run {check.status} (exit {check.exit_code}); "
                           "--allow-failed checks its record")
    run = None if check.statement is None else {
        "id": check.run_id, "status": check.status, "exit_code": check.exit_code,
        "sandbox": check.backend, "unsafe": check.unsafe}
    return dataclasses.replace(result, problems=(*result.problems, *problems),
                               notes=(*result.notes, *check.notes), run=run,
                               verified=result.verified and not problems)
