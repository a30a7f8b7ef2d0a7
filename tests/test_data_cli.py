"""`securenb data ...`: JSON output, exit codes, workspace records, and no secrets anywhere."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from cryptography.fernet import Fernet

from securenb.cli.data_cmd import data
from securenb.errors import SecurenbError

KEK_B64 = base64.b64encode(os.urandom(32)).decode()


@pytest.fixture(autouse=True)
def outside_any_workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Commands record into the workspace found from cwd: never the developer's own."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("SECURENB_KEK", KEK_B64)
    return {"SECURENB_KEK": KEK_B64}


def invoke(*args: str) -> Result:
    return CliRunner().invoke(data, list(args), catch_exceptions=True)


def exit_code(result: Result) -> int:
    """What `securenb` (main) exits with: a SecurenbError's own code."""
    if isinstance(result.exception, SecurenbError):
        return result.exception.exit_code
    return result.exit_code


def as_json(result: Result) -> Any:
    assert result.exit_code == 0, (result.output, result.exception)
    return json.loads(result.output)


def csv_file(folder: Path) -> Path:
    src = folder / "train.csv"
    src.write_text("age,income\n" + "".join(f"{20 + i % 50},{i * 10}\n" for i in range(5000)))
    return src


def test_encrypt_inspect_decrypt(tmp_path: Path, env: dict[str, str]) -> None:
    src = csv_file(tmp_path)
    info = as_json(invoke("encrypt", str(src), "--role", "analyst", "--infer-schema", "--json"))
    assert info["ciphertext"] == str(tmp_path / "train.csv.enc") and info["schema"] is True
    assert info["roles"] == ["analyst"] and info["kek_uri"] == "env:SECURENB_KEK"
    found = as_json(invoke("inspect", info["ciphertext"], "--verify", "--json"))
    assert found["kind"] == "securenb-dataset" and found["digest_ok"] is True
    assert found["manifest"]["schema"]["columns"][0]["name"] == "age"
    out = tmp_path / "plain.csv"
    denied = invoke("decrypt", info["ciphertext"], "-o", str(out), "--role", "intern")
    assert exit_code(denied) == 1 and "role 'intern' may not decrypt" in str(denied.exception)
    result = as_json(invoke("decrypt", info["ciphertext"], "-o", str(out), "--role", "analyst",
                            "--json"))
    assert out.read_text() == src.read_text() and result["plaintext_size"] == src.stat().st_size


def test_schema_file_is_checked_before_encrypting(tmp_path: Path, env: dict[str, str]) -> None:
    src = csv_file(tmp_path)
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps({"columns": [{"name": "age", "type": "int", "max": 30},
                                              {"name": "income", "type": "int"}]}))
    result = invoke("encrypt", str(src), "--schema", str(schema))
    assert exit_code(result) == 1 and "column 'age': rule max=30" in str(result.exception)
    assert not (tmp_path / "train.csv.enc").exists()
    schema.write_text(json.dumps({"columns": [{"name": "age", "type": "integer"}]}))
    result = invoke("encrypt", str(src), "--schema", str(schema))
    assert exit_code(result) == 2 and "invalid schema at columns.0.type" in str(result.exception)


def test_rotate(tmp_path: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    src = csv_file(tmp_path)
    enc = as_json(invoke("encrypt", str(src), "--json"))["ciphertext"]
    before = Path(enc).read_bytes()
    new = tmp_path / "new.kek"
    created = as_json(invoke("new-kek", f"file:{new}", "--json"))
    rotated = as_json(invoke("rotate", enc, "--to", f"file:{new}", "--json"))
    assert rotated[0]["new_kek_id"] == created["key_id"] and Path(enc).read_bytes() == before
    monkeypatch.delenv("SECURENB_KEK")
    as_json(invoke("decrypt", enc, "-o", str(tmp_path / "out.csv"), "--json"))


def test_migrate(tmp_path: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    key = Fernet.generate_key()
    legacy = tmp_path / "train.csv.encrypted"
    legacy.write_bytes(Fernet(key).encrypt(b"a,b\n1,2\n"))
    monkeypatch.setenv("OLD_FERNET", key.decode())
    kind = as_json(invoke("inspect", str(legacy), "--json"))["kind"]
    assert kind == "fernet-legacy"
    info = as_json(invoke("migrate", str(legacy), "--fernet-key", "env:OLD_FERNET", "--json"))
    assert info["ciphertext"] == str(tmp_path / "train.csv.enc") and info["name"] == "train.csv"
    wrong = invoke("migrate", str(legacy), "-o", str(tmp_path / "x.enc"),
                   "--fernet-key", "env:NOT_SET")
    assert exit_code(wrong) == 2 and "NOT_SET is not set" in str(wrong.exception)


def test_inspect_exit_codes(tmp_path: Path, env: dict[str, str]) -> None:
    enc = as_json(invoke("encrypt", str(csv_file(tmp_path)), "--json"))["ciphertext"]
    assert invoke("inspect", enc).exit_code == 0
    Path(enc).write_bytes(Path(enc).read_bytes()[:-10])
    assert invoke("inspect", enc, "--verify").exit_code == 1
    other = tmp_path / "random.bin"
    other.write_bytes(b"\x00" + os.urandom(99))  # 0 is no Tink header length
    assert as_json(invoke("inspect", str(other), "--json"))["kind"] == "unknown"


def test_tampered_file_exits_1_and_writes_nothing(tmp_path: Path, env: dict[str, str]) -> None:
    enc = Path(as_json(invoke("encrypt", str(csv_file(tmp_path)), "--json"))["ciphertext"])
    damaged = bytearray(enc.read_bytes())
    damaged[100] ^= 1
    enc.write_bytes(bytes(damaged))
    out = tmp_path / "out.csv"
    result = invoke("decrypt", str(enc), "-o", str(out))
    assert exit_code(result) == 1 and "does not authenticate" in str(result.exception)
    assert not out.exists()


def test_records_in_the_workspace_without_secrets(
    workspace: Any, env: dict[str, str], tmp_path: Path
) -> None:
    src = csv_file(tmp_path)
    info = as_json(invoke("encrypt", str(src), "--role", "analyst", "--json"))
    as_json(invoke("decrypt", info["ciphertext"], "-o", str(tmp_path / "o.csv"),
                   "--role", "analyst", "--json"))
    artifacts = workspace.store.list_artifacts(10)
    assert [a.digest for a in artifacts] == [info["ciphertext_sha256"]]
    actions = [e for e in _audit_entries(workspace) if e["action"].startswith("data.")]
    assert [e["action"] for e in actions] == ["data.encrypt", "data.decrypt"]
    assert all(e["subject"] == f"sha256:{info['ciphertext_sha256']}" for e in actions)
    # the manifest is a signed dataset attestation about the ciphertext
    from securenb.core.attest import DATASET_PREDICATE

    (record,) = workspace.store.attestations_for(info["ciphertext_sha256"], DATASET_PREDICATE)
    _, statement = workspace.load_attestation(record.envelope)
    assert statement["predicate"]["roles"] == ["analyst"]
    assert statement["predicate"]["ciphertext"]["sha256"] == info["ciphertext_sha256"]
    from securenb.data import data_key_for

    data_key = data_key_for(info["ciphertext"], role="analyst")
    stored = (tmp_path / ".securenb").rglob("*")
    everything = b"".join(p.read_bytes() for p in stored if p.is_file())
    for secret in (KEK_B64, data_key.to_secret(), data_key.material.hex()):
        assert secret.encode() not in everything
        assert secret.encode() not in Path(info["manifest"]).read_bytes()


def _audit_entries(workspace: Any) -> list[dict[str, Any]]:
    return [record.entry.to_json() for record in workspace.audit_log.read()]
