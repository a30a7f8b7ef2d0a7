"""Check a package set against OSV advisories and record the result on its digest."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from securenb.core.attest import Subject, make_statement
from securenb.core.attest.statement import PREDICATE_BASE
from securenb.core.workspace import Workspace
from securenb.errors import SecurenbError
from securenb.vulns.osv import OsvDatabase, query_online
from securenb.vulns.packages import PackageSet, environment
from securenb.vulns.report import VulnReport, merge_aliases

VULNERABILITIES_PREDICATE = f"{PREDICATE_BASE}/vulnerabilities/v1"


def check(packages: PackageSet, osv_dir: Path | None = None) -> VulnReport:
    """Findings for ``packages``: from the OSV export at ``osv_dir``, else online (PyPI)."""
    if osv_dir is not None:
        db = OsvDatabase.load(osv_dir)
        findings = [f for name, version in packages.packages for f in db.query(name, version)]
        unchecked: list[tuple[str, str, str]] = []
        database = f"OSV export {osv_dir} ({db.records} records)"
    else:
        findings, unchecked = query_online(list(packages.packages))
        database = "PyPI vulnerability data (OSV) via pip-audit"
    return VulnReport(packages.source, packages.digest, len(packages.packages), database,
                      tuple(merge_aliases(findings)), tuple(unchecked))


def run_environment(ws: Workspace, run_id: str) -> PackageSet:
    """The Python environment a recorded run used, if it is still exactly as recorded."""
    run = ws.store.get_run(run_id)
    if run.provenance is None:
        raise SecurenbError(f"run {run_id}: no provenance recorded")
    _, statement = ws.load_attestation(run.provenance)
    deps: list[dict[str, Any]] = statement["predicate"]["buildDefinition"].get(
        "resolvedDependencies", [])
    env = next((d for d in deps if d.get("name") == "environment"), None)
    if env is None:
        raise SecurenbError(f"run {run_id}: its provenance names no Python environment "
                            "(a container image run: scan the image instead)")
    prefix = urlsplit(str(env["uri"]).removeprefix("python-env:")).path
    packages = environment(prefix)
    if packages.digest != env["digest"]["sha256"]:
        raise SecurenbError(f"run {run_id}: the environment at {prefix} changed since the run "
                            "(its package digest differs); check the run's lock file instead")
    return PackageSet(f"environment of run {run_id} ({prefix})", packages.packages)


def environment_digest(provenance: dict[str, Any]) -> str | None:
    """The package digest of the environment (or image) a run's provenance predicate names:
    the subject a vulnerability check of that run's environment is recorded on."""
    deps = provenance.get("buildDefinition", {}).get("resolvedDependencies", [])
    env = next((d for d in deps if d.get("name") in ("environment", "image")), None)
    return str((env or {}).get("digest", {}).get("sha256", "")) or None


def record(ws: Workspace, report: VulnReport) -> str:
    """Attest ``report`` on the package set's digest, and audit it; the envelope digest."""
    ws.signer()
    statement = make_statement([Subject(f"python-packages:{report.source}", report.digest)],
                               VULNERABILITIES_PREDICATE, report.to_predicate())
    envelope = ws.attest(statement).envelope
    ws.audit("vulnerabilities.check", f"sha256:{report.digest}", {
        "source": report.source, "packages": report.packages, "counts": report.counts(),
        "attestation": f"sha256:{envelope}"})
    return envelope
