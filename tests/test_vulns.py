"""`securenb vulns`: OSV matching (offline export, online via pip-audit), severities, aliases,
attestation on the package set's digest, and the gate's vulnerabilities rule."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from securenb.core.attest import Dependency, RunProvenance, Subject
from securenb.core.store import file_sha256
from securenb.core.workspace import Workspace
from securenb.errors import SecurenbError
from securenb.gate import evaluate
from securenb.vulns import VULNERABILITIES_PREDICATE, check, environment, from_file, record

EXPORT = Path(__file__).parent / "osv_export"
SECURENB = str(Path(sys.executable).parent / "securenb")


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SECURENB, *args], capture_output=True, text=True, check=False,
                          cwd=cwd, timeout=120)


def requirements(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "requirements.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(("package", "version", "ids"), [
    ("requests", "2.30.0", {"GHSA-j8r2-6x86-q33q"}),
    ("requests", "2.3.0", {"GHSA-j8r2-6x86-q33q"}),  # introduced: inclusive
    ("requests", "2.31.0", set()),  # fixed: exclusive
    ("requests", "2.2.1", set()),  # before introduced (the withdrawn record is ignored)
    ("Requests", "2.30.0", {"GHSA-j8r2-6x86-q33q"}),  # names compare canonically
    ("jinja2", "3.1.2", {"GHSA-h5c8-rqwp-cp95"}),  # introduced "0"
    ("jinja2", "3.1.3", set()),
    ("werkzeug", "3.0.2", {"GHSA-2g68-c3qc-8985"}),  # last_affected: inclusive
    ("werkzeug", "3.0.3", set()),
    ("numpy", "1.0", set()),
])
def test_offline_matching(tmp_path: Path, package: str, version: str, ids: set[str]) -> None:
    report = check(from_file(requirements(tmp_path, f"{package}=={version}")), EXPORT)
    assert {f.id for f in report.findings} == ids
    assert report.complete


def test_finding_fields_and_alias_merging(tmp_path: Path) -> None:
    report = check(from_file(requirements(tmp_path, "requests==2.30.0")), EXPORT)
    (finding,) = report.findings  # GHSA and PYSEC records of one advisory: one finding
    assert finding.id == "GHSA-j8r2-6x86-q33q"  # the rated record is kept
    assert set(finding.aliases) == {"CVE-2023-32681", "PYSEC-2023-74"}
    assert finding.severity == "medium" and finding.score == pytest.approx(6.1)
    assert finding.vector == "CVSS:3.1/AV:N/AC:H/PR:N/UI:R/S:C/C:H/I:N/A:N"
    assert finding.fixed == ("2.31.0",) and finding.affected == (">=2.3.0,<2.31.0",)


def test_zip_export_like_osv_dev(tmp_path: Path) -> None:
    archive = tmp_path / "all.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in (EXPORT / "PyPI").glob("*.json"):
            zf.write(path, path.name)
    report = check(from_file(requirements(tmp_path, "werkzeug==3.0.1")), archive)
    assert [f.severity for f in report.findings] == ["high"]


def test_lock_file(tmp_path: Path) -> None:
    lock = tmp_path / "uv.lock"
    lock.write_text('version = 1\n\n[[package]]\nname = "jinja2"\nversion = "3.1.2"\n\n'
                    '[[package]]\nname = "markupsafe"\nversion = "2.1.5"\n')
    packages = from_file(lock)
    assert packages.packages == (("jinja2", "3.1.2"), ("markupsafe", "2.1.5"))
    assert [f.id for f in check(packages, EXPORT).findings] == ["GHSA-h5c8-rqwp-cp95"]


@pytest.mark.parametrize(("line", "message"), [
    ("requests>=2.0", "requests is not pinned to one version"),
    ("requests==2.*", "not pinned"),
    ("not a requirement!!", "line 1"),
])
def test_unpinned_or_bad_requirement_is_refused(tmp_path: Path, line: str, message: str) -> None:
    with pytest.raises(SecurenbError, match=message):
        from_file(requirements(tmp_path, line))


def test_environment_digest_is_the_one_runs_record() -> None:
    from securenb.isolation.hostenv import packages_digest

    env = environment()
    assert (env.digest, len(env.packages)) == packages_digest(sys.prefix)


def test_cli_exit_codes_json_sarif(tmp_path: Path) -> None:
    req = requirements(tmp_path, "requests==2.30.0", "werkzeug==3.0.2  # pinned",
                       "jinja2==3.1.2 \\", "    --hash=sha256:" + "0" * 64)
    done = cli("vulns", "-r", str(req), "--osv-dir", str(EXPORT), "--json",
               "--sarif", str(tmp_path / "v.sarif"), cwd=tmp_path)
    assert done.returncode == 1, done.stderr  # werkzeug: high, the default threshold
    doc = json.loads(done.stdout)
    assert doc["failing"] == 1 and doc["counts"]["high"] == 1 and doc["counts"]["medium"] == 2
    sarif = json.loads((tmp_path / "v.sarif").read_text())
    levels = {r["ruleId"]: r["level"] for r in sarif["runs"][0]["results"]}
    assert levels["GHSA-2g68-c3qc-8985"] == "error" and levels["GHSA-h5c8-rqwp-cp95"] == "warning"
    done = cli("vulns", "-r", str(req), "--osv-dir", str(EXPORT), "--fail-on", "critical",
               cwd=tmp_path)
    assert done.returncode == 0, done.stdout
    done = cli("vulns", "-r", str(tmp_path / "missing.txt"), "--osv-dir", str(EXPORT),
               cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.startswith("error: ")


def test_online_never_reports_clean_for_an_unanswered_package(tmp_path: Path) -> None:
    """PyPI's vulnerability data through pip-audit: where PyPI cannot be asked (or does not
    know the package), the package is unchecked and the exit code 2, never 0."""
    req = requirements(tmp_path, "requests==2.30.0", "securenb-no-such-package==1.0")
    done = cli("vulns", "-r", str(req), "--json", cwd=tmp_path)
    doc = json.loads(done.stdout)
    assert done.returncode in (1, 2)
    unchecked = {u["package"] for u in doc["unchecked"]}
    assert "securenb-no-such-package" in unchecked
    if "requests" not in unchecked:  # PyPI answered: the advisory is found
        assert "GHSA-j8r2-6x86-q33q" in {f["id"] for f in doc["findings"]} | {
            a for f in doc["findings"] for a in f["aliases"]}


def _run_with_environment(ws: Workspace, model: Path, env_digest: str) -> None:
    prov = RunProvenance("secure-train", "r1", "2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z",
                         {"cell": {"sha256": "0" * 64}},
                         {"sandbox": {"backend": "bwrap", "unsafe": False, "network": "none"}},
                         [Dependency("securenb:cell", "0" * 64, "cell"),
                          Dependency("python-env:/venv?packages=1", env_digest, "environment")],
                         "bwrap")
    ws.attest(prov.statement([Subject(ws.relpath(model), file_sha256(model)[0])]))


def test_gate_vulnerabilities_rule(workspace: Workspace, tmp_path: Path) -> None:
    (workspace.root / "securenb.toml").write_text("[gate]\nrequire_vulnerability_scan = true\n")
    ws = Workspace(workspace.root)
    clean, vulnerable = ws.root / "clean.bin", ws.root / "vulnerable.bin"
    clean.write_bytes(b"clean model")
    vulnerable.write_bytes(b"vulnerable model")
    good = from_file(requirements(tmp_path, "requests==2.31.0"))
    (tmp_path / "bad").mkdir()
    bad = from_file(requirements(tmp_path / "bad", "werkzeug==3.0.2"))
    _run_with_environment(ws, clean, good.digest)
    _run_with_environment(ws, vulnerable, bad.digest)

    def rule(path: Path) -> object:
        return next(r for r in evaluate(ws, path, record=False).rules
                    if r.rule == "vulnerabilities")

    assert rule(clean).status == "unknown"  # required, never checked
    record(ws, check(good, EXPORT))
    envelope = record(ws, check(bad, EXPORT))
    assert ws.store.attestations_for(bad.digest, VULNERABILITIES_PREDICATE)[0].envelope == envelope
    assert rule(clean).status == "pass"
    failed = rule(vulnerable)
    assert failed.status == "fail" and "GHSA-2g68-c3qc-8985" in failed.why


def test_osv_export_must_exist(tmp_path: Path) -> None:
    with pytest.raises(SecurenbError, match="no such OSV export"):
        check(from_file(requirements(tmp_path, "requests==2.30.0")), tmp_path / "nope")
    broken = tmp_path / "broken"
    shutil.copytree(EXPORT, broken)
    (broken / "PyPI" / "bad.json").write_text("{not json")
    with pytest.raises(SecurenbError, match="not OSV JSON"):
        check(from_file(requirements(tmp_path, "requests==2.30.0")), broken)


def test_run_environment_from_provenance(workspace: Workspace) -> None:
    from securenb.vulns import run_environment

    env = environment()
    model = workspace.root / "m.bin"
    model.write_bytes(b"m")

    def recorded_run(run_id: str, digest: str) -> None:
        prov = RunProvenance(
            "secure-train", run_id, "2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z",
            {"cell": {"sha256": "0" * 64}}, {"sandbox": {"backend": "bwrap"}},
            [Dependency(f"python-env:{sys.prefix}?packages={len(env.packages)}", digest,
                        "environment")], "bwrap")
        workspace.store.start_run(run_id, "secure_train")
        envelope = workspace.attest(prov.statement([Subject("m.bin", file_sha256(model)[0])]))
        workspace.store.finish_run(run_id, "ok", envelope.envelope)

    recorded_run("same", env.digest)
    packages = run_environment(workspace, "same")
    assert packages.packages == env.packages and packages.digest == env.digest
    assert "environment of run same" in packages.source
    recorded_run("changed", "f" * 64)
    with pytest.raises(SecurenbError, match="changed since the run"):
        run_environment(workspace, "changed")
