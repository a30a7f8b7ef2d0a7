"""`securenb keys ...` against a real workspace (click's CliRunner)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from securenb.errors import KeyError_

workspace_mod = pytest.importorskip("securenb.core.workspace", exc_type=ImportError)
keys_cmd = pytest.importorskip("securenb.cli.keys_cmd", exc_type=ImportError)

VECTORS = Path(__file__).parent / "vectors" / "cosign"


def run(root: Path, *args: str, env: dict[str, str | None] | None = None) -> Result:
    return CliRunner().invoke(keys_cmd.keys, list(args), obj={"directory": root}, env=env)


def secrets_of(root: Path, passphrase: str) -> list[str]:
    """The passphrase and every body line of every private key file in the workspace."""
    lines = [passphrase]
    for key_file in (root / ".securenb" / "keys").glob("*.key"):
        lines += [x for x in key_file.read_text().splitlines() if not x.startswith("-----")]
    return lines


def test_create_list_export(workspace: object, tmp_path: Path, passphrase: str) -> None:
    created = run(tmp_path, "create", "model-signer", "--algorithm", "ed25519", "--json")
    assert created.exit_code == 0, created.output
    info = json.loads(created.output)
    assert info["name"] == "model-signer"
    assert info["algorithm"] == "ed25519"

    listed = run(tmp_path, "list", "--json")
    assert listed.exit_code == 0, listed.output
    items = json.loads(listed.output)
    assert {k["name"] for k in items} == {"workspace", "release", "blob", "model-signer"}
    assert set(items[0]) == {"name", "algorithm", "key_id", "created", "provider", "purpose"}
    for secret in secrets_of(tmp_path, passphrase):
        assert secret not in listed.output
        assert secret not in created.output

    assert run(tmp_path, "list").exit_code == 0

    out = tmp_path / "signer.pub"
    assert run(tmp_path, "export-public", "model-signer", "-o", str(out)).exit_code == 0
    printed = run(tmp_path, "export-public", "model-signer")
    assert printed.output.encode() == out.read_bytes()
    assert out.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")


def test_create_refuses_overwrite_without_force(workspace: object, tmp_path: Path) -> None:
    first = json.loads(run(tmp_path, "create", "k", "--json").output)
    again = run(tmp_path, "create", "k")
    assert isinstance(again.exception, KeyError_)
    assert "already exists; use --force" in str(again.exception)
    replaced = json.loads(run(tmp_path, "create", "k", "--force", "--json").output)
    assert replaced["key_id"] != first["key_id"]


def test_import_cosign_key(workspace: object, tmp_path: Path, passphrase: str) -> None:
    source = str(VECTORS / "zarf-cosign.key")
    wrong = run(
        tmp_path, "import", source, "--name", "zarf",
        "--source-passphrase-env", "COSIGN_PASSWORD", env={"COSIGN_PASSWORD": "nope"},
    )
    assert isinstance(wrong.exception, KeyError_)
    assert str(wrong.exception) == f"wrong passphrase for {source}"

    imported = run(
        tmp_path, "import", source, "--name", "zarf", "--json",
        "--source-passphrase-env", "COSIGN_PASSWORD", env={"COSIGN_PASSWORD": "test"},
    )
    assert imported.exit_code == 0, imported.output
    published = (VECTORS / "zarf-cosign.pub").read_bytes()
    assert run(tmp_path, "export-public", "zarf").output.encode() == published
    for secret in [*secrets_of(tmp_path, passphrase), "test"]:
        assert secret not in imported.output


def test_passphrase_needed_without_env_or_terminal(workspace: object, tmp_path: Path) -> None:
    result = run(tmp_path, "create", "k", env={"SECURENB_KEY_PASSPHRASE": None})
    assert isinstance(result.exception, KeyError_)
    assert "set the environment variable SECURENB_KEY_PASSPHRASE" in str(result.exception)
