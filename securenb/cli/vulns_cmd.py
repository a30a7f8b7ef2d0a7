"""`securenb vulns [--requirements FILE | --run RUN_ID] [--osv-dir DIR]`: known vulnerabilities.

Checks this Python environment (default), a pinned requirements or lock file,
or the environment a recorded run used, against OSV advisories: offline from
an OSV export (``--osv-dir``, a folder of OSV JSON or osv.dev's ``all.zip``),
else online (PyPI's vulnerability data through pip-audit). Exit codes: 0 no
finding at or above the threshold (policy ``[gate] fail_on_severity`` unless
``--fail-on``), 1 some, 2 could not check (bad input, or a package the online
source did not answer for). In a workspace the result is a
vulnerability attestation on the package set's digest.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from securenb.core.fsutil import atomic_write_bytes
from securenb.errors import SecurenbError


@click.command()
@click.option("--requirements", "-r", type=click.Path(dir_okay=False, path_type=Path),
              help="Pinned requirements file or TOML lock file (uv.lock, poetry.lock).")
@click.option("--run", "run_id", help="The environment a recorded run used.")
@click.option("--osv-dir", type=click.Path(path_type=Path),
              help="Offline: an OSV export (folder of OSV JSON, or all.zip).")
@click.option("--fail-on", type=click.Choice(["low", "medium", "high", "critical"]),
              help="Exit 1 at or above this severity (default: policy [gate] fail_on_severity).")
@click.option("--sarif", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write a SARIF 2.1.0 log.")
@click.option("--no-record", is_flag=True, help="Do not record the check in the workspace.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON on stdout.")
@click.pass_context
def vulns(ctx: click.Context, requirements: Path | None, run_id: str | None,
          osv_dir: Path | None, fail_on: str | None, sarif: Path | None, no_record: bool,
          as_json: bool) -> None:
    """Known vulnerabilities of Python packages (exit 0 none at threshold, 1 some, 2 error)."""
    from securenb.core.locate import workspace_root
    from securenb.core.policy import load_policy
    from securenb.vulns import at_or_above, check, environment, from_file, record, run_environment

    if requirements is not None and run_id is not None:
        raise SecurenbError("give --requirements or --run, not both")
    start = Path((ctx.find_root().obj or {}).get("directory") or Path.cwd()).resolve()
    root = workspace_root(start)
    policy, _ = load_policy(root or start)
    threshold = fail_on or policy.gate.fail_on_severity
    ws = None
    if root is not None:
        from securenb.core.workspace import Workspace

        ws = Workspace(root)
    if run_id is not None:
        if ws is None:
            raise SecurenbError("--run needs a securenb workspace (runs are recorded there)")
        packages = run_environment(ws, run_id)
    else:
        packages = from_file(requirements) if requirements is not None else environment()
    report = check(packages, osv_dir)
    if sarif is not None:
        atomic_write_bytes(sarif, json.dumps(_sarif(report, threshold), indent=2).encode())
    attestation = None
    if ws is not None and not no_record:
        attestation = f"sha256:{record(ws, report)}"
    failing = [f for f in report.findings if at_or_above(f.severity, threshold)]
    if as_json:
        click.echo(json.dumps({"digest": f"sha256:{report.digest}", "threshold": threshold,
                               "failing": len(failing), "complete": report.complete,
                               "attestation": attestation,
                               **report.to_predicate()}, indent=2))
    else:
        click.echo(report.to_text())
        click.echo(f"{len(failing)} at or above {threshold}"
                   + (f"; recorded: attestation {attestation}" if attestation else ""))
    if failing:
        raise SystemExit(1)
    if not report.complete:
        click.echo(f"error: {len(report.unchecked)} package(s) could not be checked "
                   f"(first: {report.unchecked[0][0]}); use --osv-dir with a local OSV export",
                   err=True)
        raise SystemExit(2)
    raise SystemExit(0)


def _sarif(report: object, threshold: str) -> dict[str, object]:
    from securenb import __version__
    from securenb.vulns import VulnReport, at_or_above

    assert isinstance(report, VulnReport)
    ids = sorted({f.id for f in report.findings})
    results = [{
        "ruleId": f.id, "ruleIndex": ids.index(f.id),
        "level": "error" if at_or_above(f.severity, threshold) else "warning",
        "message": {"text": f"{f.package} {f.version}: {f.summary} ({f.severity}"
                            + (f" {f.score:.1f}" if f.score is not None else "") + "); "
                            + (f"fixed in {', '.join(f.fixed)}" if f.fixed else "no fix")},
        "locations": [{"logicalLocations": [{"fullyQualifiedName": f"{f.package}=={f.version}",
                                             "kind": "package"}]}],
        "properties": {"aliases": list(f.aliases), "security-severity": str(f.score or "")},
    } for f in report.findings]
    return {"$schema": "https://json.schemastore.org/sarif-2.1.0.json", "version": "2.1.0",
            "runs": [{"tool": {"driver": {"name": "securenb-vulns", "version": __version__,
                                          "rules": [{"id": i} for i in ids]}},
                      "results": results}]}
