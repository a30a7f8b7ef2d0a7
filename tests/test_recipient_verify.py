"""The recipient: only the files and a public key, no workspace, no passphrase (issue 10.2/10.3).

Runs the real `securenb` command in a fresh folder, with no passphrase in its
environment, as someone who received a model, a notebook and a run's
provenance would.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from securenb.core.attest import Subject
from securenb.core.attest.slsa import Dependency, RunProvenance
from securenb.core.keys import PrivateKey
from securenb.core.workspace import Workspace
from securenb.signing import SignRequest, sign

SECURENB = [sys.executable, "-c", "from securenb.cli.main import main; main()"]


def securenb(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if "PASSPHRASE" not in k}
    return subprocess.run([*SECURENB, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, check=False, timeout=120)


@pytest.fixture
def shipped(workspace: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What a producer ships: model + .sig, a signed notebook, a provenance, public keys."""
    ws = workspace
    model = ws.root / "model.bin"
    model.write_bytes(b"weights" * 1000)
    sign(ws, SignRequest(str(model)))
    nb = ws.root / "train.ipynb"
    nb.write_text(json.dumps({"cells": [{"cell_type": "code", "source": "x = 1", "metadata": {},
                                         "outputs": [], "execution_count": None}],
                              "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    sign(ws, SignRequest(str(nb)))
    prov = RunProvenance("notebook-run", "run-1", "2026-12-01T10:00:00Z", "2026-12-01T10:05:00Z",
                         {"notebook": "train.ipynb"},
                         dependencies=[Dependency("file:data.csv", "ab" * 32)])
    digest = hashlib.sha256(model.read_bytes()).hexdigest()
    record = ws.attest(prov.statement([Subject("model.bin", digest)]))
    out = tmp_path_factory.mktemp("recipient")
    for name in ("model.bin", "model.bin.sig", "train.ipynb"):
        shutil.copy(ws.root / name, out / name)
    shutil.copy(ws.store.blob_path(record.envelope), out / "run-1.intoto.json")
    (out / "release.pub").write_bytes(ws.keystore.export_public("release"))
    (out / "record.pub").write_bytes(ws.keystore.export_public("workspace"))
    (out / "other.pub").write_bytes(PrivateKey.generate().public.pem())
    return out


def test_recipient_verifies_from_the_files_alone(shipped: Path) -> None:
    assert not (shipped / ".securenb").exists()
    for target, key in (("model.bin", "release.pub"), ("train.ipynb", "release.pub"),
                        ("run-1.intoto.json", "record.pub")):
        ok = securenb(shipped, "verify", target, "--key", key)
        assert ok.returncode == 0, (target, ok.stdout, ok.stderr)
        assert ok.stdout.startswith("VERIFIED"), ok.stdout
        bad = securenb(shipped, "verify", target, "--key", "other.pub")
        assert bad.returncode == 1, (target, bad.stdout, bad.stderr)
        assert "FAILED" in bad.stdout
    assert not (shipped / ".securenb").exists(), "a recipient's verify writes no workspace"


def test_recipient_catches_a_changed_file(shipped: Path) -> None:
    (shipped / "model.bin").write_bytes(b"backdoor")
    bad = securenb(shipped, "verify", "model.bin", "--key", "release.pub")
    assert bad.returncode == 1 and "FAILED" in bad.stdout
    run = securenb(shipped, "verify", "run-1.intoto.json", "--key", "record.pub")
    assert run.returncode == 1 and "model.bin" in run.stdout, run.stdout


def test_recipient_with_a_trust_policy_file(shipped: Path) -> None:
    (shipped / "trust.toml").write_text('[trust]\nkeys = ["release.pub"]\n')
    ok = securenb(shipped, "verify", "model.bin", "--policy", "trust.toml")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    (shipped / "trust.toml").write_text('[trust]\nkeys = ["other.pub"]\n')
    assert securenb(shipped, "verify", "model.bin", "--policy", "trust.toml").returncode == 1


def test_no_key_and_no_policy_is_an_error_not_a_pass(shipped: Path) -> None:
    out = securenb(shipped, "verify", "model.bin")
    assert out.returncode == 2 and "--key" in out.stderr, out.stderr


def test_key_pins_the_signer_inside_a_workspace(workspace: Workspace) -> None:
    """`--key other.pub` must fail when the workspace's own key signed (issue 10.3)."""
    model = workspace.root / "model.bin"
    model.write_bytes(b"weights")
    sign(workspace, SignRequest(str(model)))
    other = PrivateKey.generate()
    (workspace.root / "other.pub").write_bytes(other.public.pem())
    env_ok = securenb(workspace.root, "verify", "model.bin")
    assert env_ok.returncode in (0, 2)  # (2: no passphrase to record the verification)
    out = subprocess.run([*SECURENB, "verify", "model.bin", "--key", "other.pub"],
                         cwd=workspace.root, capture_output=True, text=True, check=False)
    assert out.returncode == 1, out.stdout + out.stderr
    release = workspace.keystore.public("release").key_id
    assert release[:16] in out.stdout and other.key_id[:16] in out.stdout, out.stdout
