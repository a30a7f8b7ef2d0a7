"""The workspace through the real `securenb` executable: what a user types and sees."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TEST_PASSPHRASE

from securenb.core.attest import GATE_PREDICATE, Subject, make_statement
from securenb.core.workspace import Workspace

SECURENB = str(Path(sys.executable).parent / "securenb")


def run(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k != "SECURENB_KEY_PASSPHRASE"}
    base.update({"SECURENB_KEY_PASSPHRASE": TEST_PASSPHRASE, **(env or {})})
    return subprocess.run(
        [SECURENB, *args],
        cwd=cwd,
        env=base,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
        check=False,
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    result = run(tmp_path, "init", "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["workspace"] == str(tmp_path / ".securenb")
    return tmp_path


def test_init_creates_workspace_and_refuses_twice(project: Path) -> None:
    ws = project / ".securenb"
    assert (ws / "config.toml").is_file() and (ws / "index.sqlite").is_file()
    assert oct((ws / "keys" / "workspace.key").stat().st_mode & 0o777) == "0o600"
    assert TEST_PASSPHRASE.encode() not in b"".join(
        p.read_bytes() for p in ws.rglob("*") if p.is_file()
    )
    again = run(project, "init")
    assert again.returncode == 2
    assert "a workspace already exists here" in again.stderr


def test_init_without_passphrase_or_terminal_names_the_variable(tmp_path: Path) -> None:
    result = run(tmp_path, "init", env={"SECURENB_KEY_PASSPHRASE": ""})
    assert result.returncode == 2
    assert "SECURENB_KEY_PASSPHRASE" in result.stderr
    assert not (tmp_path / ".securenb" / "config.toml").exists()


def test_commands_outside_a_workspace_say_so(tmp_path: Path) -> None:
    result = run(tmp_path, "artifacts")
    assert result.returncode == 2
    assert "no .securenb/ workspace" in result.stderr and "securenb init" in result.stderr


def test_record_show_and_find_from_a_subfolder(project: Path) -> None:
    (project / "models").mkdir()
    (project / "models" / "a.bin").write_bytes(b"A" * 1000)
    (project / "models" / "b.bin").write_bytes(b"B" * 10)
    recorded = json.loads(run(project, "record", "models", "--json").stdout)
    assert sorted(r["path"] for r in recorded) == ["models/a.bin", "models/b.bin"]
    digest = next(r["digest"] for r in recorded if r["path"] == "models/a.bin")

    sub = project / "models"  # found by walking up, like git
    by_path = json.loads(run(sub, "show", "a.bin", "--json").stdout)
    by_prefix = json.loads(run(project, "show", digest[:10], "--json").stdout)
    assert by_path["digest"] == by_prefix["digest"] == digest
    assert by_path["versions"][0]["size"] == 1000

    listed = json.loads(run(project, "artifacts", "--json").stdout)
    assert {a["path"] for a in listed} == {"models/a.bin", "models/b.bin"}
    missing = run(project, "show", "0" * 64)
    assert missing.returncode == 2 and "no recorded artifact" in missing.stderr


def test_attestations_verify_and_tampering_is_reported(project: Path, passphrase: str) -> None:
    model = project / "model.bin"
    model.write_bytes(b"weights")
    ws = Workspace(project)
    art = ws.record_artifact(model)
    rec = ws.attest(
        make_statement(
            [Subject("model.bin", art.digest)],
            GATE_PREDICATE,
            {"verdict": "allow", "checks": [], "policyDigest": ws.policy.digest()},
        )
    )
    ok = run(project, "attestations", art.digest, "--json")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)[0]["verified"] is True

    blob = ws.store.blob_path(rec.envelope)
    blob.chmod(0o644)
    blob.write_bytes(blob.read_bytes().replace(b'"payloadType"', b'"payloadtype"'))
    bad = run(project, "attestations", "--json")
    assert bad.returncode == 1
    assert "blob was edited" in json.loads(bad.stdout)[0]["error"]
    doctor = run(project, "doctor", "--check-store", "--json")
    assert doctor.returncode == 1
    assert any("blob was edited" in p for p in json.loads(doctor.stdout)["workspace"]["problems"])


def test_wrong_passphrase_is_named_and_not_echoed(project: Path) -> None:
    (project / "f.txt").write_text("x")
    result = run(project, "record", "f.txt", env={"SECURENB_KEY_PASSPHRASE": "wrong one"})
    assert result.returncode == 2
    assert "wrong passphrase for" in result.stderr and "workspace.key" in result.stderr
    assert "wrong one" not in result.stderr + result.stdout


def test_policy_typo_stops_commands_that_use_policy(project: Path) -> None:
    (project / "securenb.toml").write_text('[signing]\nkye = "workspace"\n')
    (project / "f.txt").write_text("x")
    result = run(project, "record", "f.txt")
    assert result.returncode == 2
    assert "securenb.toml: unknown key 'signing.kye' (did you mean 'key'?)" in result.stderr


def test_corrupt_index_is_named(project: Path) -> None:
    for name in ("index.sqlite-wal", "index.sqlite-shm"):
        (project / ".securenb" / name).unlink(missing_ok=True)
    (project / ".securenb" / "index.sqlite").write_bytes(b"garbage" * 500)
    result = run(project, "artifacts")
    assert result.returncode == 2
    assert "index.sqlite: corrupt SQLite index" in result.stderr


def test_doctor_reports_every_backend(project: Path) -> None:
    result = run(project, "doctor", "--json")
    assert result.returncode == 0, result.stderr
    names = [c["name"] for c in json.loads(result.stdout)["capabilities"]]
    assert names == ["bwrap", "podman", "docker", "kubernetes", "gpu"]


def test_audit_log_records_what_happened(project: Path, passphrase: str) -> None:
    (project / "f.txt").write_text("x")
    run(project, "record", "f.txt")
    ws = Workspace(project)
    actions = [r.entry.action for r in ws.audit_log.read()]
    assert actions[:2] == ["workspace.init", "artifact.record"]
    verified = run(project, "audit", "verify", "--json")
    assert verified.returncode == 0, verified.stderr
