"""The gate: each rule has a case that makes it pass and one that makes it fail; a required
check that never ran is INCOMPLETE, never PASS; the verdict is attested and audited."""

from __future__ import annotations

import base64
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from kernel_support import run_in_kernel

from securenb.core.attest import (
    GATE_PREDICATE,
    Dependency,
    RunProvenance,
    Subject,
    validate_predicate,
)
from securenb.core.store import file_sha256
from securenb.core.workspace import Workspace
from securenb.fairness import assess
from securenb.fairness.record import record as record_fairness
from securenb.gate import evaluate
from securenb.scan import scan_path
from securenb.scan.attestation import scan_statement

SECURENB = str(Path(sys.executable).parent / "securenb")


class Payload:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, ("true",)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SECURENB, *args], capture_output=True, text=True, check=False)


def policy(ws: Workspace, text: str) -> Workspace:
    """Write ``securenb.toml`` and reopen the workspace so it reads it."""
    (ws.root / "securenb.toml").write_text(text)
    return Workspace(ws.root)


def scanned(ws: Workspace, path: Path) -> None:
    digests: dict[str, tuple[str, int]] = {}
    statement = scan_statement(ws, scan_path(path, digests=digests), digests)
    assert statement is not None
    ws.attest(statement)


def trained(ws: Workspace, path: Path, backend: str = "bwrap", unsafe: bool = False,
            inputs: list[Dependency] | None = None) -> None:
    """A run provenance naming ``path`` as an output, as %%secure_train records it."""
    digest, _ = file_sha256(path)
    provenance = RunProvenance(
        build_type="secure-train", run_id="r1", started="2026-01-01T00:00:00Z",
        finished="2026-01-01T00:01:00Z", external_parameters={"cell": {"sha256": "0" * 64}},
        internal_parameters={"sandbox": {"backend": backend, "unsafe": unsafe,
                                         "network": "none"}},
        dependencies=[Dependency("securenb:cell", "0" * 64, "cell"), *(inputs or [])],
        builder=backend)
    ws.attest(provenance.statement([Subject(ws.relpath(path), digest)]))


def rule(ws: Workspace, path: Path | str, name: str) -> Any:
    verdict = evaluate(ws, path, record=False)
    return next(r for r in verdict.rules if r.rule == name)


@pytest.fixture
def model(workspace: Workspace) -> Path:
    path = workspace.root / "model.pkl"
    path.write_bytes(pickle.dumps({"weights": [1.0, 2.0]}))
    return path


# -- outcome -------------------------------------------------------------------------------
def test_nothing_recorded_is_incomplete_never_pass(workspace: Workspace, model: Path) -> None:
    verdict = evaluate(workspace, model)
    assert verdict.outcome == "INCOMPLETE" and verdict.exit_code == 2
    unknown = {r.rule for r in verdict.rules if r.status == "unknown"}
    assert unknown == {"signature", "scan", "isolated_training"}
    assert verdict.to_predicate()["verdict"] == "deny"


def test_everything_recorded_passes_and_is_attested(workspace: Workspace, model: Path) -> None:
    ws = policy(workspace, "[gate]\nrequire_fairness = true\n")
    assert cli("sign", str(model)).returncode == 0
    scanned(ws, model)
    trained(ws, model)
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 1000)
    record_fairness(ws, assess(y, y, rng.choice(["a", "b"], 1000)), model)
    verdict = evaluate(ws, model)
    assert verdict.outcome == "PASS", verdict.to_text()
    assert verdict.exit_code == 0
    assert verdict.to_predicate()["verdict"] == "allow"
    assert verdict.policy_digest == ws.policy.digest()
    records = ws.store.attestations_for(verdict.digest, GATE_PREDICATE)
    _, statement = ws.load_attestation(records[0].envelope)
    assert statement["predicate"]["outcome"] == "PASS"
    validate_predicate(GATE_PREDICATE, statement["predicate"])
    audit = [r.entry for r in ws.audit_log.read() if r.entry.action == "gate.evaluate"]
    assert audit[-1].subject == f"sha256:{verdict.digest}"
    assert audit[-1].details["outcome"] == "PASS"
    # gating again does not count the earlier verdict as evidence
    assert evaluate(ws, model, record=False).attestations == verdict.attestations


# -- one pass and one fail per rule ------------------------------------------------------------
def test_signature_trusted_passes_untrusted_fails(workspace: Workspace, model: Path) -> None:
    assert rule(workspace, model, "signature").status == "unknown"
    assert cli("sign", str(model)).returncode == 0
    passed = rule(workspace, model, "signature")
    assert passed.status == "pass" and "trust.workspace_key" in passed.why
    ws = policy(workspace, "[trust]\nworkspace_key = false\n")
    failed = rule(ws, model, "signature")
    assert failed.status == "fail" and "no signer is trusted" in failed.why


def test_signature_of_other_bytes_does_not_count(workspace: Workspace, model: Path) -> None:
    assert cli("sign", str(model)).returncode == 0
    model.write_bytes(model.read_bytes() + b"\x00")  # changed after signing
    assert rule(workspace, model, "signature").status == "unknown"


def test_scan_safe_passes_unsafe_and_unknown_fail(workspace: Workspace, model: Path) -> None:
    scanned(workspace, model)
    assert rule(workspace, model, "scan").status == "pass"
    bad = workspace.root / "bad.pkl"
    bad.write_bytes(pickle.dumps(Payload()))
    scanned(workspace, bad)
    failed = rule(workspace, bad, "scan")
    assert failed.status == "fail" and "UNSAFE" in failed.found
    odd = workspace.root / "odd.bin"
    odd.write_bytes(b"\x80\x05not really a pickle")
    scanned(workspace, odd)
    unknown = rule(workspace, odd, "scan")
    assert unknown.status == "fail" and "never treated as SAFE" in unknown.why


def test_fairness_within_passes_outside_fails(workspace: Workspace, model: Path) -> None:
    ws = policy(workspace, "[gate]\nrequire_fairness = true\n")
    assert rule(ws, model, "fairness").status == "unknown"
    rng = np.random.default_rng(1)
    y, groups = rng.integers(0, 2, 2000), rng.choice(["a", "b"], 2000)
    record_fairness(ws, assess(y, y, groups), model)
    assert rule(ws, model, "fairness").status == "pass"
    record_fairness(ws, assess(y, np.where(groups == "a", 1, y), groups), model)
    failed = rule(ws, model, "fairness")
    assert failed.status == "fail" and "breaks max_demographic_parity_difference" in failed.why


def test_fairness_is_rechecked_against_todays_policy(workspace: Workspace, model: Path) -> None:
    rng = np.random.default_rng(2)
    y, groups = rng.integers(0, 2, 2000), rng.choice(["a", "b"], 2000)
    pred = np.where((groups == "a") & (rng.random(2000) < 0.1), 1, y)  # a small disparity
    record_fairness(workspace, assess(y, pred, groups), model)
    assert rule(workspace, model, "fairness").status == "pass"
    ws = policy(workspace, "[fairness]\nmax_demographic_parity_difference = 0.001\n")
    assert rule(ws, model, "fairness").status == "fail"


def test_fairness_undefined_is_not_a_pass(workspace: Workspace, model: Path) -> None:
    record_fairness(workspace, assess([1, 0, 1], [1, 0, 0], ["a", "a", "a"]), model)
    assert rule(workspace, model, "fairness").status == "unknown"


def test_isolated_training_passes_unsafe_local_fails(workspace: Workspace, model: Path) -> None:
    trained(workspace, model, "bwrap")
    assert rule(workspace, model, "isolated_training").status == "pass"
    other = workspace.root / "other.pkl"
    other.write_bytes(pickle.dumps([3]))
    trained(workspace, other, "unsafe-local", unsafe=True)
    failed = rule(workspace, other, "isolated_training")
    assert failed.status == "fail" and "unsafe-local" in failed.found


def _dataset(ws: Workspace, name: str, schema: bool, monkeypatch: pytest.MonkeyPatch
             ) -> Dependency:
    """A real encrypted dataset (`securenb data encrypt`), as training would depend on it."""
    monkeypatch.setenv("SECURENB_KEK", base64.b64encode(os.urandom(32)).decode())
    plain = ws.root / f"{name}.csv"
    plain.write_text("x,y\n1,2\n3,4\n")
    done = cli("data", "encrypt", str(plain), *(["--infer-schema"] if schema else []))
    assert done.returncode == 0, done.stderr
    encrypted = ws.root / f"{name}.csv.enc"
    return Dependency(encrypted.as_uri(), file_sha256(encrypted)[0], f"dataset:{name}")


def test_encrypted_data_required(workspace: Workspace, model: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    ws = policy(workspace, "[gate]\nrequire_encrypted_data = true\n")
    trained(ws, model, inputs=[_dataset(ws, "train", True, monkeypatch)])
    assert rule(ws, model, "encrypted_data").status == "pass"
    other = ws.root / "other.pkl"
    other.write_bytes(pickle.dumps([4]))
    trained(ws, other, inputs=[Dependency("file:///data/train.csv", "1" * 64)])
    failed = rule(ws, other, "encrypted_data")
    assert failed.status == "fail" and "plain input file:///data/train.csv" in failed.why


def test_validated_data_required(workspace: Workspace, model: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    ws = policy(workspace, "[gate]\nrequire_validated_data = true\n")
    trained(ws, model, inputs=[_dataset(ws, "with-schema", True, monkeypatch)])
    assert rule(ws, model, "validated_data").status == "pass"
    other = ws.root / "other.pkl"
    other.write_bytes(pickle.dumps([5]))
    trained(ws, other, inputs=[_dataset(ws, "no-schema", False, monkeypatch)])
    failed = rule(ws, other, "validated_data")
    assert failed.status == "fail" and "dataset:no-schema" in failed.why


def test_tampered_record_fails_the_gate(workspace: Workspace, model: Path) -> None:
    scanned(workspace, model)
    assert rule(workspace, model, "records").status == "pass"
    (envelope,) = [r.envelope for r in workspace.store.attestations_for(file_sha256(model)[0])]
    blob = workspace.store.blob_path(envelope)
    data = json.loads(blob.read_bytes())
    data["signatures"][0]["sig"] = data["signatures"][0]["sig"][::-1]
    blob.chmod(0o644)
    blob.write_text(json.dumps(data))
    failed = rule(workspace, model, "records")
    assert failed.status == "fail"
    assert rule(workspace, model, "scan").status == "unknown"  # the altered record is not used


# -- front-ends ------------------------------------------------------------------------------------
def test_cli_exit_codes_json_and_sarif(workspace: Workspace, model: Path) -> None:
    done = cli("gate", str(model), "--json")
    assert done.returncode == 2
    assert json.loads(done.stdout)["outcome"] == "INCOMPLETE"
    assert cli("sign", str(model)).returncode == 0
    scanned(workspace, model)
    trained(workspace, model, "unsafe-local", unsafe=True)
    done = cli("gate", str(model), "--sarif", "gate.sarif")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "gate FAIL" in done.stdout and "isolated_training" in done.stdout
    sarif = json.loads((workspace.root / "gate.sarif").read_text())
    results = sarif["runs"][0]["results"]
    assert [r["ruleId"] for r in results] == ["gate/isolated_training"]
    assert results[0]["level"] == "error"
    trained(workspace, model, "bwrap")  # a later isolated run produced the same bytes
    assert cli("gate", str(model)).returncode == 0
    by_digest = cli("gate", f"sha256:{file_sha256(model)[0][:12]}", "--no-record")
    assert by_digest.returncode == 0, by_digest.stderr


def test_cli_bad_artifact_is_one_line(workspace: Workspace) -> None:
    done = cli("gate", "missing.pkl")
    assert done.returncode == 2
    assert done.stderr.strip().startswith("error: missing.pkl: no such file")
    assert "Traceback" not in done.stderr


def test_gate_policy_is_validated(workspace: Workspace) -> None:
    (workspace.root / "securenb.toml").write_text("[gate]\nrequire_sig = true\n")
    done = cli("gate", "missing.pkl")
    assert done.returncode == 2
    assert "unknown key 'gate.require_sig'" in done.stderr
    assert "did you mean 'require_signature'" in done.stderr


def test_gate_magic_in_a_kernel(workspace: Workspace, model: Path) -> None:
    cells = run_in_kernel(workspace.root, "%load_ext securenb", "%gate model.pkl",
                          "v = %gate model.pkl --no-fail --no-record\nprint(v.outcome)")
    # IPython prints a UsageError on stderr; the execute reply is an error, so papermill stops
    errors = [o.text for o in cells[1].outputs if o.output_type == "stream" and o.name == "stderr"]
    assert errors and "UsageError: gate: INCOMPLETE for model.pkl" in errors[0]
    (shown,) = [o for o in cells[1].outputs if o.output_type == "display_data"]
    assert "application/vnd.jupyter.widget-view+json" in shown.data
    assert "[UNKNOWN] scan (required)" in shown.data["text/plain"]
    assert "gate INCOMPLETE" in shown.data["text/html"]
    assert [o.text for o in cells[2].outputs if o.output_type == "stream"] == ["INCOMPLETE\n"]


def test_gate_card_escapes(workspace: Workspace) -> None:
    from securenb.kernel.gate_magics import to_html

    odd = workspace.root / "<script>.pkl"
    odd.write_bytes(b"x")
    page = to_html(evaluate(workspace, odd, record=False))
    assert "<script>" not in page and "&lt;script&gt;.pkl" in page


def test_deleting_the_newest_record_does_not_bring_back_an_older_pass(
        workspace: Workspace, model: Path) -> None:
    """Someone removes the newest record about the artifact from the index (say a failing
    scan): the audit log still names it, so the gate fails instead of using an older one."""
    import sqlite3

    digest = file_sha256(model)[0]
    scanned(workspace, model)
    (older,) = workspace.store.attestations_for(digest)
    scanned(workspace, model)
    newest = next(r.envelope for r in workspace.store.attestations_for(digest)
                  if r.envelope != older.envelope)
    db = sqlite3.connect(workspace.store.index_path)
    with db:
        db.execute("DELETE FROM attestation_subjects WHERE envelope = ?", (newest,))
        db.execute("DELETE FROM attestations WHERE envelope = ?", (newest,))
    db.close()
    failed = rule(Workspace(workspace.root), model, "records")
    assert failed.status == "fail" and "the index does not list it" in failed.found
