"""Red team: a recipient verifies inside a folder the attacker shipped.

The attacker ships a model signed with their own key, together with a
``.securenb/`` workspace and a ``securenb.toml`` that trust that key. The
recipient extracts it and runs ``securenb verify model.bin --key vendor.pub``
inside it, with no passphrase. ``--key`` must pin the vendor's key whatever the
folder's own workspace and policy trust; ``--policy`` must be the only policy.
Real ``securenb`` processes.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from test_recipient_verify import securenb

from securenb.core.attest import Subject
from securenb.core.attest.slsa import RunProvenance
from securenb.core.keys import PrivateKey
from securenb.core.workspace import Workspace
from securenb.signing import SignRequest, sign


@pytest.fixture
def planted(tmp_path: Path, passphrase: str) -> Path:
    root = tmp_path / "received"
    ws = Workspace.init(root, passphrase)
    (root / "attacker.pub").write_bytes(ws.keystore.export_public("release"))
    (root / "securenb.toml").write_text('[trust]\nkeys = ["attacker.pub"]\n'
                                        'record_keys = ["attacker.pub"]\n')
    model = root / "model.bin"
    model.write_bytes(b"backdoored weights")
    sign(ws, SignRequest(str(model)))
    digest = hashlib.sha256(model.read_bytes()).hexdigest()
    record = ws.attest(RunProvenance("notebook-run", "run-1", "2026-12-01T10:00:00Z",
                                     "2026-12-01T10:05:00Z", {}).statement(
                                         [Subject("model.bin", digest)]))
    (root / "run-1.intoto.json").write_bytes(ws.store.blob_path(record.envelope).read_bytes())
    vendor = PrivateKey.generate()
    (root / "vendor.pub").write_bytes(vendor.public.pem())
    (root / "vendor.toml").write_text('[trust]\nkeys = ["vendor.pub"]\n'
                                      'record_keys = ["vendor.pub"]\n')
    return root


def test_key_pins_the_vendor_inside_a_planted_workspace(planted: Path) -> None:
    out = securenb(planted, "verify", "model.bin", "--key", "vendor.pub")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "VERIFIED" not in out.stdout.upper().replace("NOT VERIFIED", "")


def test_key_pins_the_record_signer_of_a_planted_provenance(planted: Path) -> None:
    out = securenb(planted, "verify", "run-1.intoto.json", "--key", "vendor.pub")
    assert out.returncode == 1, out.stdout + out.stderr


@pytest.mark.parametrize("artifact", ["model.bin", "run-1.intoto.json"])
def test_policy_file_ignores_the_planted_policy_and_workspace(planted: Path,
                                                             artifact: str) -> None:
    out = securenb(planted, "verify", artifact, "--policy", "vendor.toml")
    assert out.returncode == 1, out.stdout + out.stderr
