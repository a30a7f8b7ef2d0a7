"""``securenb.gate.evaluate``: the one verdict everyone asks for (CLI, server, sidebar).

It reads only what the workspace holds about the artifact's digest (so a
renamed copy gets the same answer and a changed file gets none), applies
policy ``[gate]``, and records the verdict as a gate attestation and an audit
entry.
"""

from __future__ import annotations

from pathlib import Path

from securenb.core.attest import GATE_PREDICATE, Subject, make_statement
from securenb.core.store import file_sha256, normalize_digest
from securenb.core.workspace import Workspace
from securenb.errors import WorkspaceError
from securenb.gate.evidence import gather
from securenb.gate.rules import RULES
from securenb.gate.verdict import GateVerdict


def evaluate(ws: Workspace, artifact: Path | str, *, record: bool = True,
             requester: dict[str, str] | None = None) -> GateVerdict:
    """The gate verdict for ``artifact`` (a file, or ``sha256:<hex>`` of a recorded one).

    ``requester``: who asked, when a server evaluates for a kernel (in both records).
    """
    policy, source = ws.policy_and_source  # a broken policy is the first thing to report
    name, digest = _identify(ws, artifact)
    evidence = gather(ws, digest, skip=(GATE_PREDICATE,))
    rules = tuple(rule(ws, policy, evidence) for rule in RULES)
    verdict = GateVerdict(name, digest, rules, policy.digest(),
                          str(source) if source else "default policy", evidence.count)
    if not record:
        return verdict
    ws.signer()  # unlock first: a locked key must not leave half a record behind
    envelope = ws.attest(make_statement([Subject(name, digest)], GATE_PREDICATE,
                                        verdict.to_predicate()), requester=requester).envelope
    ws.audit("gate.evaluate", f"sha256:{digest}", {
        "path": name, "outcome": verdict.outcome, "policy": verdict.policy_digest,
        "failed": [r.rule for r in rules if r.status == "fail"],
        "unknown": [r.rule for r in rules if r.status == "unknown"],
        "attestation": f"sha256:{envelope}", **(requester or {}),
    })
    return GateVerdict(name, digest, rules, verdict.policy_digest, verdict.policy_source,
                       verdict.attestations, envelope)


def _identify(ws: Workspace, artifact: Path | str) -> tuple[str, str]:
    path = Path(artifact)
    if path.is_file():
        return ws.relpath(path), file_sha256(path)[0]
    text = str(artifact)
    if path.exists():
        raise WorkspaceError(f"{artifact}: not a file (gate one file, e.g. the model)")
    if not text.lower().startswith("sha256:"):
        raise WorkspaceError(f"{artifact}: no such file (or give sha256:<hex> of a recorded "
                             "artifact)")
    prefix = normalize_digest(text)
    found = ws.store.find_artifacts(prefix)
    if len({a.digest for a in found}) != 1:
        raise WorkspaceError(f"{artifact}: {'no' if not found else 'more than one'} recorded "
                             "artifact has this digest")
    return found[0].path, found[0].digest
