"""The gate's rules: each reads the evidence about the artifact and policy ``[gate]``.

Every rule answers pass, fail, unknown (required, but never ran or could not
decide) or skipped (not required and never ran). A check that ran and failed
fails the gate even when policy does not require it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from securenb.core.attest import (
    DATASET_PREDICATE,
    FAIRNESS_PREDICATE,
    SCAN_PREDICATE,
    SLSA_PROVENANCE_PREDICATE,
)
from securenb.core.policy import Policy
from securenb.core.workspace import Workspace
from securenb.gate.evidence import Attested, Evidence
from securenb.gate.verdict import RuleResult, Status
from securenb.signing.record import SIGNATURE_PREDICATE, VERIFICATION_PREDICATE

ISOLATED_BACKENDS = ("bwrap", "podman", "docker", "kubernetes")

Rule = Callable[[Workspace, Policy, Evidence], RuleResult]


def _missing(rule: str, required: bool, what: str, how: str) -> RuleResult:
    if required:
        return RuleResult(rule, True, "unknown", f"no {what}",
                          f"required by policy [gate]; run {how} first")
    return RuleResult(rule, False, "skipped", f"no {what}", "not required by policy [gate]")


def records(ws: Workspace, policy: Policy, ev: Evidence) -> RuleResult:
    """Every record about the artifact verifies (a tampered store stops the gate)."""
    if ev.rejected:
        return RuleResult("records", True, "fail", f"{len(ev.rejected)} attestation(s) do not "
                          f"verify: {ev.rejected[0]}", "records about this artifact were altered")
    return RuleResult("records", True, "pass", f"{ev.count} attestation(s), all verified",
                      "signed by the workspace's record key")


def signature(ws: Workspace, policy: Policy, ev: Evidence) -> RuleResult:
    """Signed by a signer the trust policy names; a newer failed verification fails."""
    required = policy.gate.require_signature
    signatures = ev.all(SIGNATURE_PREDICATE)
    verification = ev.latest(VERIFICATION_PREDICATE)
    if verification is not None and not verification.predicate.get("verified"):
        newest_sig = signatures[0].record.created if signatures else ""
        if verification.record.created >= newest_sig:
            problems = "; ".join(verification.predicate.get("problems") or []) or "not verified"
            return RuleResult("signature", required, "fail",
                              f"last verification ({verification.record.created}) failed",
                              problems, verification.record.envelope)
    if not signatures:
        return _missing("signature", required, "signature recorded",
                        "`securenb sign` (or %sign_model)")
    from securenb.signing.trust import Trust

    trust = Trust.for_workspace(ws)
    seen = []
    for item in signatures:
        signer = item.predicate.get("signer") or {}
        why = _trusted(trust, signer)
        who = _describe(signer)
        if why is not None:
            return RuleResult("signature", required, "pass",
                              f"signed by {who} at {item.record.created}", f"trusted: {why}",
                              item.record.envelope)
        seen.append(who)
    return RuleResult("signature", required, "fail", f"signed by {', '.join(seen)}",
                      f"no signer is trusted by [trust] of {trust.source}",
                      signatures[0].record.envelope)


def _trusted(trust: Any, signer: dict[str, Any]) -> str | None:
    method = signer.get("method")
    if method == "key":
        key = trust.key_by_id(str(signer.get("key_id", "")))
        return key.trusted if key is not None else None
    issuer, identity = signer.get("issuer"), signer.get("identity")
    if identity is None:
        return None
    if method == "certificate":
        for authority in trust.authorities:
            if any(i.matches(issuer, [identity]) for i in authority.identities):
                return f"{identity} under {authority.label}"
    if method == "sigstore":
        for allowed in trust.identities:
            if allowed.matches(issuer, [identity]):
                return f"{allowed.describe()} in trust.identities"
    return None


def _describe(signer: dict[str, Any]) -> str:
    if signer.get("method") == "key":
        return f"key {str(signer.get('key_id', '?'))[:16]}"
    return f"{signer.get('identity')} (issuer {signer.get('issuer')})"


def scan(ws: Workspace, policy: Policy, ev: Evidence) -> RuleResult:
    """The latest model scan of exactly these bytes is SAFE (UNKNOWN is not safe)."""
    required = policy.gate.require_scan
    latest = ev.latest(SCAN_PREDICATE)
    if latest is None:
        return _missing("scan", required, "model scan recorded", "`securenb scan`")
    verdict = latest.predicate.get("verdict")
    found = f"scan {verdict} at {latest.record.created}"
    if verdict == "SAFE":
        return RuleResult("scan", required, "pass", found, "nothing runs on load",
                          latest.record.envelope)
    why = ("code may run on load" if verdict == "UNSAFE"
           else "not fully analysed: UNKNOWN is never treated as SAFE")
    return RuleResult("scan", required, "fail", found, why, latest.record.envelope)


def fairness(ws: Workspace, policy: Policy, ev: Evidence) -> RuleResult:
    """The latest bias check is within today's bounds (re-checked against current policy)."""
    required = policy.gate.require_fairness
    latest = ev.latest(FAIRNESS_PREDICATE)
    if latest is None:
        return _missing("fairness", required, "bias check recorded", "`securenb bias`")
    worst = latest.predicate.get("disparities", {})
    found = f"bias check at {latest.record.created} over {latest.predicate.get('rows')} rows"
    broken, undefined = [], []
    for key, bound in policy.fairness.model_dump().items():
        disparity = key.partition("_")[2]
        value = worst.get(disparity)
        if value is None:
            undefined.append(f"{disparity} undefined")
        elif (value > bound) if key.startswith("max_") else (value < bound):
            op = "<=" if key.startswith("max_") else ">="
            broken.append(f"{disparity} = {value:.4f} breaks {key} ({op} {bound})")
    status: Status = "fail" if broken else ("unknown" if undefined else "pass")
    why = "; ".join(broken or undefined) or "every disparity within [fairness] bounds"
    return RuleResult("fairness", required, status, found, why, latest.record.envelope)


def _provenance(ev: Evidence, policy: Policy) -> Attested | None:
    """The newest run provenance naming the artifact. A run a kernel had recorded through
    its server is the kernel's word; with ``[gate] trust_kernel_runs = false`` it is not
    counted, and only runs the server or `securenb run` recorded are."""
    runs = ev.all(SLSA_PROVENANCE_PREDICATE)
    if not policy.gate.trust_kernel_runs:
        runs = [r for r in runs if not _claimed_by(r.predicate.get("buildDefinition", {}))]
    return runs[0] if runs else None


def _no_run(rule: str, required: bool, policy: Policy, ev: Evidence) -> RuleResult:
    if ev.all(SLSA_PROVENANCE_PREDICATE):  # only kernels' claims, not counted by policy
        return _missing(rule, required, "run provenance but a kernel's own claim (policy "
                        "[gate] trust_kernel_runs = false)", "`securenb run`")
    return _missing(rule, required, "run provenance names this artifact",
                    "training with %%secure_train")


def isolation(ws: Workspace, policy: Policy, ev: Evidence) -> RuleResult:
    """The run that produced the artifact ran in an isolated sandbox (from its provenance)."""
    required = policy.gate.require_isolated_training
    prov = _provenance(ev, policy)
    if prov is None:
        return _no_run("isolated_training", required, policy, ev)
    build = prov.predicate.get("buildDefinition", {})
    sandbox = build.get("internalParameters", {}).get("sandbox", {})
    backend = sandbox.get("backend")
    run = prov.predicate.get("runDetails", {}).get("metadata", {}).get("invocationId", "?")
    found = f"run {run} on backend {backend}{_claimed_by(build)}"
    if backend in ISOLATED_BACKENDS and not sandbox.get("unsafe", True) and \
            sandbox.get("network") == "none":
        return RuleResult("isolated_training", required, "pass", found,
                          "isolated sandbox, no network", prov.record.envelope)
    return RuleResult("isolated_training", required, "fail", found,
                      "not an isolated sandbox without network", prov.record.envelope)


def _claimed_by(build: dict[str, Any]) -> str:
    """Whose word a run's provenance is, where a kernel had it recorded through its server:
    counted (the kernel ran the sandbox; docs/server.md), but the verdict says so."""
    requester = build.get("internalParameters", {}).get("requester")
    if not isinstance(requester, dict) or "kernel" not in requester:
        return ""
    users = f", users {requester['users']}" if requester.get("users") else ""
    return f" (claimed by kernel {requester['kernel']}{users})"


def _inputs(prov: Attested) -> list[dict[str, Any]]:
    deps = prov.predicate.get("buildDefinition", {}).get("resolvedDependencies", [])
    return [d for d in deps if str(d.get("uri", "")).startswith("file:")]


def encrypted_data(ws: Workspace, policy: Policy, ev: Evidence) -> RuleResult:
    """Every file the run read was an encrypted dataset."""
    required = policy.gate.require_encrypted_data
    prov = _provenance(ev, policy)
    if prov is None:
        return _no_run("encrypted_data", required, policy, ev)
    inputs = _inputs(prov)
    plain = [d["uri"] for d in inputs if not str(d.get("name", "")).startswith("dataset:")]
    found = f"{len(inputs) - len(plain)} encrypted dataset(s), {len(plain)} plain input(s)"
    if plain:
        return RuleResult("encrypted_data", required, "fail" if required else "skipped", found,
                          f"plain input {plain[0]}"
                          + ("" if required else "; not required by policy [gate]"),
                          prov.record.envelope)
    return RuleResult("encrypted_data", required, "pass", found, "no plain input",
                      prov.record.envelope)


def validated_data(ws: Workspace, policy: Policy, ev: Evidence) -> RuleResult:
    """Every dataset the run read has a schema in its signed manifest."""
    required = policy.gate.require_validated_data
    prov = _provenance(ev, policy)
    if prov is None:
        return _no_run("validated_data", required, policy, ev)
    datasets = [d for d in _inputs(prov) if str(d.get("name", "")).startswith("dataset:")]
    plain = len(_inputs(prov)) - len(datasets)
    without = []
    for dep in datasets:
        digest = str(dep.get("digest", {}).get("sha256", ""))
        manifests = ws.store.attestations_for(digest, DATASET_PREDICATE) if digest else []
        schema = None
        if manifests:
            _, statement = ws.load_attestation(manifests[0].envelope)
            schema = statement["predicate"].get("schema")
        if not schema:
            without.append(str(dep.get("name")))
    found = f"{len(datasets)} dataset(s), {len(without)} without schema, {plain} plain input(s)"
    failing = without or (["plain input"] if plain else [])
    if failing:
        return RuleResult("validated_data", required, "fail" if required else "skipped", found,
                          f"not validated: {', '.join(failing)}"
                          + ("" if required else "; not required by policy [gate]"),
                          prov.record.envelope)
    return RuleResult("validated_data", required, "pass", found,
                      "every input validated against its schema", prov.record.envelope)


def vulnerabilities(ws: Workspace, policy: Policy, ev: Evidence) -> RuleResult:
    """No known vulnerability at or above ``fail_on_severity`` in the environment the run
    that produced the artifact used (a check recorded on that environment's digest)."""
    from securenb.vulns import VULNERABILITIES_PREDICATE, at_or_above, environment_digest

    required = policy.gate.require_vulnerability_scan
    threshold = policy.gate.fail_on_severity
    how = "`securenb vulns --run RUN_ID`"
    prov = _provenance(ev, policy)
    if prov is None:
        return _no_run("vulnerabilities", required, policy, ev)
    digest = environment_digest(prov.predicate)
    checks = ws.store.attestations_for(digest, VULNERABILITIES_PREDICATE) if digest else []
    if not checks:
        return _missing("vulnerabilities", required, "vulnerability check of the run's "
                        "environment", how)
    _, statement = ws.load_attestation(checks[0].envelope)
    predicate = statement["predicate"]
    findings = predicate.get("findings", [])
    failing = [f for f in findings if at_or_above(str(f.get("severity")), threshold)]
    found = (f"{len(findings)} finding(s) in {predicate.get('packages')} packages "
             f"({checks[0].created})")
    if failing:
        first = failing[0]
        return RuleResult("vulnerabilities", required, "fail", found,
                          f"{len(failing)} at or above {threshold}, e.g. {first.get('id')} in "
                          f"{first.get('package')} {first.get('version')} "
                          f"({first.get('severity')})", checks[0].envelope)
    if predicate.get("unchecked"):
        return RuleResult("vulnerabilities", required, "unknown" if required else "skipped",
                          found, f"{len(predicate['unchecked'])} package(s) could not be "
                          "checked", checks[0].envelope)
    return RuleResult("vulnerabilities", required, "pass", found,
                      f"none at or above {threshold}", checks[0].envelope)


def robustness(ws: Workspace, policy: Policy, ev: Evidence) -> RuleResult:
    """The latest robustness evaluation: accuracy under every attack >= the policy floor."""
    from securenb.robustness import ROBUSTNESS_PREDICATE

    required = policy.gate.require_robustness
    floor = policy.gate.min_robust_accuracy
    latest = ev.latest(ROBUSTNESS_PREDICATE)
    if latest is None:
        return _missing("robustness", required, "robustness evaluation recorded",
                        "`securenb robustness`")
    worst = float(latest.predicate.get("worstAccuracy", 0.0))
    found = (f"worst accuracy under attack {worst:.3f} (clean "
             f"{float(latest.predicate.get('cleanAccuracy', 0.0)):.3f}) at "
             f"{latest.record.created}")
    status: Status = "pass" if worst >= floor else "fail"
    op = ">=" if status == "pass" else "<"
    return RuleResult("robustness", required, status, found,
                      f"{worst:.3f} {op} policy min_robust_accuracy {floor}",
                      latest.record.envelope)


RULES: tuple[Rule, ...] = (records, signature, scan, fairness, isolation, vulnerabilities,
                           robustness, encrypted_data, validated_data)
