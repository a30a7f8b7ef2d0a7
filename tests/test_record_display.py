"""Only signed values are shown as verified (issue 11.3), and record trust is pinned (11.4).

The SQLite index is a cache for queries; the signed DSSE envelope is the record.
An attacker who edits the index must not make `securenb attestations` or
`securenb show` display a record of another type, for another file, as verified.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from securenb.cli.main import cli
from securenb.core.keys import PrivateKey
from securenb.core.workspace import Workspace, pin_path
from securenb.errors import KeyError_
from securenb.signing import SIGNATURE_PREDICATE, SignRequest, sign


def attestations(root: Path, *args: str) -> tuple[int, list[dict[str, object]]]:
    result = CliRunner().invoke(cli, ["-C", str(root), "attestations", "--json", *args])
    return result.exit_code, json.loads(result.output)


@pytest.fixture
def signed(workspace: Workspace) -> Path:
    model = workspace.root / "model.bin"
    model.write_bytes(b"weights")
    sign(workspace, SignRequest(str(model)))
    (workspace.root / "other.bin").write_bytes(b"something else")
    return model


def test_edited_index_is_reported_as_tampering(workspace: Workspace, signed: Path) -> None:
    with sqlite3.connect(workspace.dir / "index.sqlite") as db:
        db.execute("UPDATE attestations SET predicate_type = ? WHERE predicate_type = ?",
                   ("https://slsa.dev/provenance/v1", SIGNATURE_PREDICATE))
        db.execute("UPDATE attestation_subjects SET name = 'other.bin' WHERE name = 'model.bin'")
    code, rows = attestations(workspace.root)
    assert code == 1
    edited = [r for r in rows if "index" in str(r.get("error", ""))]
    assert edited, rows
    row = edited[0]
    assert row["verified"] is False
    assert row["predicate_type"] == SIGNATURE_PREDICATE, "shown from the signed envelope"
    assert "model.bin" in [s["name"] for s in row["subjects"]]  # type: ignore[union-attr]
    assert "other.bin" not in [s["name"] for s in row["subjects"]]  # type: ignore[union-attr]


def test_untouched_index_verifies(workspace: Workspace, signed: Path) -> None:
    code, rows = attestations(workspace.root)
    assert code == 0 and rows and all(r["verified"] is True for r in rows), rows


def test_a_swapped_record_key_is_an_error(workspace: Workspace, signed: Path,
                                          tmp_path: Path) -> None:
    """Records re-signed with a new key and workspace.pub swapped: the pin catches it."""
    code, rows = attestations(workspace.root)
    assert code == 0 and rows[0]["trust"].startswith("pinned in "), rows  # type: ignore[union-attr]
    intruder = PrivateKey.generate()
    (workspace.dir / "keys" / "workspace.pub").write_bytes(intruder.public.pem())
    with pytest.raises(KeyError_, match="the record key changed: pinned"):
        Workspace(workspace.root).record_trust()
    code, rows = attestations(workspace.root)
    assert code == 1 and all(r["verified"] is False for r in rows)
    assert "the record key changed" in str(rows[0]["error"])


def test_unpinned_record_key_is_reported(workspace: Workspace, signed: Path) -> None:
    pin_path(workspace.root).unlink()
    code, rows = attestations(workspace.root)
    assert code == 0
    assert str(rows[0]["trust"]).startswith("unpinned: found only in "), rows


def test_policy_record_keys_pin_the_key(workspace: Workspace, signed: Path) -> None:
    pub = workspace.root / "record.pub"
    pub.write_bytes(workspace.keystore.export_public("workspace"))
    (workspace.root / "securenb.toml").write_text('[trust]\nrecord_keys = ["record.pub"]\n')
    (workspace.dir / "keys" / "workspace.pub").write_bytes(PrivateKey.generate().public.pem())
    code, rows = attestations(workspace.root)
    assert code == 0 and "trust.record_keys" in str(rows[0]["trust"]), rows
