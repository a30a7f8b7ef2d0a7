"""What a kernel may have the record key sign: only the claims kernels legitimately make.

The records are what ``securenb verify``, the gate and the sidebar believe, and
a kernel runs untrusted code (DESIGN, threat model 3). Through the server's
kernel socket a kernel may record only:

- its own ``%%secure_train`` runs: SLSA provenance of build type
  ``secure-train`` (marked by the server with who asked:
  ``buildDefinition.internalParameters.requester``, the kernel and its users),
  the audit entries ``artifact.record`` and ``secure_train.run``;
- its bias checks (``%bias_check``, computed from data only the kernel holds):
  the fairness predicate and ``fairness.check``, for users holding
  ``securenb:bias``;
- scans (``%scan_model``, for users holding ``securenb:scan``): the server
  scans the files the statement names itself, with the policy's allowlist
  only, and signs its own report; the kernel's report is discarded.

Everything else is a verdict a kernel cannot vouch for, and is refused: gate
verdicts, signatures and verifications (the server's sign and verify record
those), papermill and isolated-kernel runs (``securenb run`` and the server's
provisioner record those), datasets, deployments, vulnerability and
robustness checks, and every other audit action (``run.*``, ``gate.*``, ...).
The local agent (securenb.server.agent) serves every process of its user
alike, the CLI and ``securenb run`` included, so these rules are the server's.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from securenb.core.attest import (
    FAIRNESS_PREDICATE,
    SCAN_PREDICATE,
    SLSA_PROVENANCE_PREDICATE,
)
from securenb.core.attest.schemas import kind_of
from securenb.core.attest.slsa import BUILD_TYPE_BASE
from securenb.core.attest.statement import subjects_of
from securenb.core.workspace import Workspace
from securenb.errors import SecurenbError
from securenb.isolation.train import BUILD_TYPE as SECURE_TRAIN

SECURE_TRAIN_BUILD = f"{BUILD_TYPE_BASE}/{SECURE_TRAIN}/v1"
_AUDIT_NEEDS: dict[str, str | None] = {  # audit action -> RBAC action (None: its kernel's)
    "artifact.record": None, "secure_train.run": None, "fairness.check": "bias"}
_ATTEST_NEEDS: dict[str, str] = {FAIRNESS_PREDICATE: "bias", SCAN_PREDICATE: "scan"}


class NotAKernelRecord(SecurenbError):
    """A record kernels may not have signed (refused and audited as ``access.deny``)."""


def attest_need(statement: Any) -> tuple[str | None, str]:
    """(the RBAC action a kernel's statement needs, None if running the kernel is enough;
    what it is about), or NotAKernelRecord."""
    if not isinstance(statement, dict) or not isinstance(statement.get("predicate"), dict):
        raise SecurenbError("attest request: 'statement' must be an in-toto statement")
    kind = str(statement.get("predicateType"))
    if kind == SLSA_PROVENANCE_PREDICATE:
        definition = statement["predicate"].get("buildDefinition")
        if not isinstance(definition, dict):
            raise SecurenbError("attest request: SLSA provenance without a buildDefinition")
        build = definition.get("buildType")
        if build == SECURE_TRAIN_BUILD:
            return None, f"{kind} ({build})"
        raise NotAKernelRecord(
            f"a kernel may record the provenance of its own %%secure_train runs only, not of "
            f"build type {build!r} (papermill and isolated-kernel runs are recorded by "
            "`securenb run` and the server itself)")
    if kind in _ATTEST_NEEDS:
        return _ATTEST_NEEDS[kind], kind
    if kind_of(kind) is None:
        raise NotAKernelRecord(f"predicate type {kind!r} is not a securenb record (the record "
                               "key signs only those, and a kernel only a few)")
    raise NotAKernelRecord(f"a kernel may not have {kind!r} records signed: it cannot vouch "
                           "for them (the server's sign, verify and gate make those)")


def audit_need(action: str) -> str | None:
    """The RBAC action a kernel's audit entry ``action`` needs, or NotAKernelRecord."""
    if action not in _AUDIT_NEEDS:
        raise NotAKernelRecord(f"a kernel may not append {action!r} audit entries (it may: "
                               f"{', '.join(_AUDIT_NEEDS)})")
    return _AUDIT_NEEDS[action]


def admit(ws: Workspace, inside: Callable[[str], Path], statement: dict[str, Any],
          requester: dict[str, str]) -> dict[str, Any]:
    """The statement the server signs for a kernel (checked by ``attest_need`` first)."""
    if statement["predicateType"] == SCAN_PREDICATE:
        return server_scan(ws, inside, statement)
    if statement["predicateType"] == SLSA_PROVENANCE_PREDICATE:
        marked = copy.deepcopy(statement)
        build = marked["predicate"]["buildDefinition"]
        internal = build.setdefault("internalParameters", {})
        if not isinstance(internal, dict):
            raise SecurenbError("attest request: internalParameters must be an object")
        internal["requester"] = requester  # set here: a kernel cannot name someone else
        return marked
    return statement


def server_scan(ws: Workspace, inside: Callable[[str], Path],
                statement: dict[str, Any]) -> dict[str, Any]:
    """The server's own scan of the files ``statement`` names (inside the root), as a
    statement: a kernel's verdict is never signed, nor its extra allowed globals. Each
    file is named by the digest of the copy the server scanned (securenb.scan.snapshot):
    the kernel can rewrite the file while it is scanned, not what the record names."""
    from securenb.scan import ScanReport, scan_path
    from securenb.scan.attestation import scan_statement
    from securenb.scan.engine import Digests

    paths = [inside(s.name) for s in subjects_of(statement)]
    allowed = list(ws.policy.scan.allow_globals)
    digests: Digests = {}
    try:
        parts = [scan_path(p, extra_allowed_globals=allowed, digests=digests) for p in paths]
    except (FileNotFoundError, ValueError) as exc:
        raise SecurenbError(f"scan: {exc}") from None
    report = parts[0] if len(parts) == 1 else ScanReport(
        target=os.path.commonpath([str(p) for p in paths]),
        files=[f for r in parts for f in r.files], findings=[f for r in parts for f in r.findings],
        seconds=sum(r.seconds for r in parts), scanner_version=parts[0].scanner_version,
        allowlist_extra=parts[0].allowlist_extra)
    ours = scan_statement(ws, report, digests)
    if ours is None:
        raise SecurenbError("scan: the statement names no regular file; nothing to record")
    return ours
