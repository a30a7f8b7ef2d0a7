"""`securenb audit ...` on a real workspace (the group is invoked through click directly)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from securenb.cli.audit_cmd import audit
from securenb.core.audit.storage import split_checkpoints
from securenb.core.workspace import Workspace
from securenb.errors import SecurenbError


def run(root: Path, *args: str) -> Result:
    return CliRunner().invoke(audit, list(args), obj={"directory": root})


@pytest.fixture
def ws(workspace: Any) -> Workspace:
    assert isinstance(workspace, Workspace)
    for i in range(5):
        workspace.audit("test.event", f"sha256:{i:064x}", {"n": i})
    return workspace


def test_verify_ok_and_json(ws: Workspace) -> None:
    result = run(ws.root, "verify", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["ok"] and report["entries"] == 6  # workspace.init + 5
    assert "verified" in run(ws.root, "verify").output


def test_verify_tampered_exits_1_and_lists_problems(ws: Workspace) -> None:
    entries = ws.dir / "audit" / "entries.jsonl"
    entries.write_bytes(entries.read_bytes().replace(b'"n":3', b'"n":4'))
    result = run(ws.root, "verify", "--json")
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert not report["ok"]
    assert any("entry 4 (line 5) was edited" in p for p in report["problems"])
    assert "FAILED" in run(ws.root, "verify").output


def test_verify_offline_copy_with_a_public_key_file(ws: Workspace, tmp_path: Path) -> None:
    pub = tmp_path / "log.pub"
    pub.write_bytes(ws.public_key().pem())
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in ("entries.jsonl", "checkpoints"):
        (copy / name).write_bytes((ws.dir / "audit" / name).read_bytes())
    result = CliRunner().invoke(audit, ["verify", "--dir", str(copy), "--public-key", str(pub)],
                                obj={"directory": tmp_path / "nowhere"})
    assert result.exit_code == 0, result.output


def test_verify_could_not_check(ws: Workspace, tmp_path: Path) -> None:
    result = run(ws.root, "verify", "--dir", str(tmp_path / "empty"))
    assert isinstance(result.exception, SecurenbError)
    assert result.exception.exit_code == 2


def test_trusted_checkpoint_catches_a_rollback(ws: Workspace, tmp_path: Path) -> None:
    kept = tmp_path / "checkpoint.txt"
    result = run(ws.root, "checkpoint")
    assert result.exit_code == 0
    kept.write_text(result.output)
    audit_dir = ws.dir / "audit"
    entries = (audit_dir / "entries.jsonl").read_bytes().splitlines(keepends=True)
    (audit_dir / "entries.jsonl").write_bytes(b"".join(entries[:-1]))
    cps = (audit_dir / "checkpoints").read_bytes()
    ranges, _ = split_checkpoints(cps)
    (audit_dir / "checkpoints").write_bytes(cps[: ranges[-1][0]])
    assert run(ws.root, "verify").exit_code == 0  # consistent on its own
    result = run(ws.root, "verify", "--trusted-checkpoint", str(kept), "--json")
    assert result.exit_code == 1
    assert "rolled back" in json.loads(result.output)["problems"][0]


def test_list_and_show(ws: Workspace) -> None:
    result = run(ws.root, "list", "--limit", "3", "--json")
    assert result.exit_code == 0
    rows = json.loads(result.output)
    assert [r["index"] for r in rows] == [3, 4, 5]
    assert rows[-1]["details"] == {"n": 4}
    assert json.loads(run(ws.root, "list", "--action", "workspace.init", "--limit", "10",
                          "--json").output)[0]["index"] == 0
    assert "test.event" in run(ws.root, "list").output
    shown = json.loads(run(ws.root, "show", "2", "--json").output)
    assert shown["index"] == 2 and len(shown["leaf_hash"]) == 64
    missing = run(ws.root, "show", "99")
    assert isinstance(missing.exception, SecurenbError)


def test_prove_and_verify_proof(ws: Workspace, tmp_path: Path) -> None:
    result = run(ws.root, "prove", "3")
    assert result.exit_code == 0
    proof = json.loads(result.output)
    assert proof["index"] == 3 and proof["tree_size"] == 6
    path = tmp_path / "proof.json"
    path.write_text(result.output)
    ok = run(ws.root, "verify-proof", str(path), "--json")
    assert ok.exit_code == 0 and json.loads(ok.output)["ok"]
    proof["entry"] = proof["entry"].replace("test.event", "test.other")
    path.write_text(json.dumps(proof))
    bad = run(ws.root, "verify-proof", str(path))
    assert bad.exit_code == 1 and "bad proof" in bad.output
    path.write_text("{}")
    unusable = run(ws.root, "verify-proof", str(path))
    assert isinstance(unusable.exception, SecurenbError)
    assert unusable.exception.exit_code == 2
