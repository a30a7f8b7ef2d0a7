"""What `audit verify` trusts: a key pinned outside the verified folder, and the last
verified checkpoint (kept under the user's state folder), never just the key lying
next to the data. Each test is an attack by someone who can rewrite `.securenb/`.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from securenb.cli.audit_cmd import audit
from securenb.core.audit import AuditLog
from securenb.core.keys import PrivateKey
from securenb.core.workspace import Workspace


def run(root: Path, *args: str) -> Result:
    return CliRunner().invoke(audit, list(args), obj={"directory": root})


def verify(root: Path, *args: str) -> tuple[int, dict[str, Any]]:
    result = run(root, "verify", "--json", *args)
    return result.exit_code, json.loads(result.output)


@pytest.fixture
def ws(workspace: Any) -> Workspace:
    assert isinstance(workspace, Workspace)
    for i in range(4):
        workspace.audit("test.event", f"sha256:{i:064x}", {"n": i})
    return workspace


def _forge(ws: Workspace, tmp_path: Path, keep: int) -> None:
    """Rewrite the log with a new key (same origin), keeping its first ``keep`` entries
    minus one edit, and swap workspace.pub for the new key's public half."""
    attacker = PrivateKey.generate("ecdsa-p256")
    entries = [r.entry for r in ws.audit_log.read()][:keep]
    forged = tmp_path / "forged"
    with AuditLog(forged, attacker, origin=ws.origin) as log:
        log.append_many(entries)
    audit_dir = ws.dir / "audit"
    for name in ("entries.jsonl", "checkpoints", "tree.bin", "offsets.bin", "state"):
        (audit_dir / name).write_bytes((forged / name).read_bytes())
    (ws.dir / "keys" / "workspace.pub").write_bytes(attacker.public.pem())


def test_a_log_resigned_with_a_new_key_and_a_swapped_pub_fails(ws: Workspace,
                                                                  tmp_path: Path) -> None:
    _forge(ws, tmp_path, keep=3)
    code, report = verify(ws.root)
    assert code == 1 and not report["ok"]
    assert any("the audit log's key changed" in p for p in report["problems"]), report


def test_the_kept_key_is_pinned_from_the_log_s_creation(ws: Workspace) -> None:
    """Never verified yet: the key kept when the log was created already counts."""
    from securenb.core.audit.trust import kept_path

    kept = json.loads(kept_path(ws.dir / "audit").read_text())
    assert kept["key_id"] == ws.public_key().key_id
    assert kept["origin"] == ws.origin
    assert stat.S_IMODE(kept_path(ws.dir / "audit").stat().st_mode) == 0o600
    code, report = verify(ws.root)
    assert code == 0 and report["trust"]["pinned"], report


def test_an_unpinned_key_is_reported_then_kept(ws: Workspace) -> None:
    from securenb.core.audit.trust import kept_path

    kept_path(ws.dir / "audit").unlink()  # e.g. a workspace copied from another machine
    assert "the key is unpinned" in run(ws.root, "verify").output.replace("\n", " ")
    kept_path(ws.dir / "audit").unlink()
    code, report = verify(ws.root)
    assert code == 0 and report["trust"]["pinned"] is False
    assert "unpinned" in report["trust"]["source"]
    code, report = verify(ws.root)
    assert code == 0 and report["trust"]["pinned"], report


def test_a_rollback_of_entries_and_checkpoints_together_is_caught(ws: Workspace,
                                                                   tmp_path: Path) -> None:
    audit_dir = ws.dir / "audit"
    before = tmp_path / "before"
    shutil.copytree(audit_dir, before)
    ws.audit("model.sign", "sha256:" + "e" * 64, {"path": "model.bin"})
    assert verify(ws.root)[0] == 0  # keeps the checkpoint with the signature's entry
    for name in ("entries.jsonl", "checkpoints", "tree.bin", "offsets.bin", "state"):
        (audit_dir / name).write_bytes((before / name).read_bytes())
    code, report = verify(ws.root)
    assert code == 1
    assert any("rolled back" in p for p in report["problems"]), report


def test_a_policy_pin_outside_the_workspace_wins(ws: Workspace, tmp_path: Path) -> None:
    other = PrivateKey.generate("ecdsa-p256").public
    (ws.root / "securenb.toml").write_text(f'[audit]\nkey = "sha256:{other.key_id}"\n')
    code, report = verify(ws.root)
    assert code == 1 and any("pins key" in p for p in report["problems"]), report
    (ws.root / "audit.pub").write_bytes(ws.public_key().pem())
    (ws.root / "securenb.toml").write_text('[audit]\nkey = "audit.pub"\n')
    code, report = verify(ws.root)
    assert code == 0 and report["trust"]["source"].startswith("[audit] key in"), report
    (ws.root / "securenb.toml").write_text('[audit]\nkey = ".securenb/keys/workspace.pub"\n')
    result = run(ws.root, "verify")
    assert result.exit_code != 0 and "inside" in str(result.exception)


def test_a_checkpoint_signed_under_another_key_name_fails(ws: Workspace) -> None:
    """ECDSA key hashes do not cover the name: the name itself must be the log's."""
    cps = ws.dir / "audit" / "checkpoints"
    cps.write_bytes(cps.read_bytes().replace(f"\u2014 {ws.origin} ".encode(),
                                             "\u2014 some.other.log ".encode()))
    code, report = verify(ws.root)
    assert code == 1 and report["problems"], report


def test_a_proof_from_another_log_with_the_same_key_fails(ws: Workspace,
                                                           tmp_path: Path) -> None:
    with AuditLog(tmp_path / "other", ws.signer(), origin="example.org/other-log") as log:
        log.append("test.event", "sha256:" + "a" * 64)
        proof = log.inclusion_proof(0)
    (tmp_path / "proof.json").write_text(json.dumps(proof.to_json()))
    result = run(ws.root, "verify-proof", str(tmp_path / "proof.json"), "--json")
    assert result.exit_code == 1, result.output
    assert "example.org/other-log" in json.loads(result.output)["problem"]
    own = ws.audit_log.inclusion_proof(2)
    (tmp_path / "own.json").write_text(json.dumps(own.to_json()))
    assert run(ws.root, "verify-proof", str(tmp_path / "own.json")).exit_code == 0


def test_with_umask_000_nothing_in_the_workspace_is_writable_by_others(
        tmp_path: Path, passphrase: str) -> None:
    old = os.umask(0)
    try:
        ws = Workspace.init(tmp_path / "project", passphrase)
        ws.audit("test.event", "sha256:" + "b" * 64)
        (tmp_path / "project" / "model.bin").write_bytes(b"weights")
        ws.record_artifact(tmp_path / "project" / "model.bin")
        ws.store.put_blob(b"blob")
    finally:
        os.umask(old)
    loose = [str(p) for p in [ws.dir, *ws.dir.rglob("*")]
             if stat.S_IMODE(p.lstat().st_mode) & 0o022]
    assert not loose


def test_a_copy_with_no_key_anywhere_cannot_be_checked(ws: Workspace, tmp_path: Path) -> None:
    outside = tmp_path.parent / f"{tmp_path.name}-elsewhere"  # no workspace above it
    copy = outside / "copy"
    shutil.copytree(ws.dir / "audit", copy)
    result = CliRunner().invoke(audit, ["verify", "--dir", str(copy)],
                                obj={"directory": outside})
    assert result.exit_code != 0 and "give --public-key" in str(result.exception)
