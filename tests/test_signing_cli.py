"""Front-ends without a server: `securenb sign|verify|cosign` and the magics in a plain IPython."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from IPython.core.error import UsageError

from securenb.cli.main import cli
from securenb.cli.sign_cmd import cosign, sign, verify
from securenb.core.workspace import Workspace
from securenb.errors import SecurenbError
from securenb.kernel import sign_magics

for _command in (sign, verify, cosign):
    cli.add_command(_command)


def run(ws: Workspace, *args: str) -> tuple[int, str]:
    """Invoke like `securenb -C ROOT ...`; map errors to exit codes as main() does."""
    result = CliRunner().invoke(cli, ["-C", str(ws.root), *args])
    if isinstance(result.exception, SecurenbError):
        return result.exception.exit_code, str(result.exception)
    return result.exit_code, result.output


@pytest.fixture
def model(workspace: Workspace) -> Path:
    folder = workspace.root / "models" / "net"
    folder.mkdir(parents=True)
    (folder / "weights.safetensors").write_bytes(b"\x00" * 100_000)
    return folder


def test_sign_then_verify_exit_codes(workspace: Workspace, model: Path) -> None:
    code, out = run(workspace, "sign", str(model), "--hash", "blake3", "--json")
    assert code == 0, out
    signed = json.loads(out)
    assert signed["kind"] == "model" and signed["algorithm"] == "blake3" and signed["attestation"]
    code, out = run(workspace, "verify", str(model), "--json")
    assert code == 0 and json.loads(out)["verified"] is True
    code, out = run(workspace, "verify", str(model))
    assert code == 0 and out.startswith(f"VERIFIED model {model}: signed by key ")
    (model / "weights.safetensors").write_bytes(b"\x01" * 100_000)
    code, out = run(workspace, "verify", str(model))
    assert code == 1 and "weights.safetensors: content changed (blake3 signed" in out
    code, out = run(workspace, "verify", str(model), "--json")
    assert code == 1 and json.loads(out)["problems"]


def test_could_not_check_is_exit_2(workspace: Workspace, model: Path) -> None:
    code, message = run(workspace, "verify", str(model))
    assert code == 2 and message.endswith("sign first with `securenb sign`")
    (workspace.root / "securenb.toml").write_text("[trust]\nkeys = ['missing.pub']\n")
    run(workspace, "sign", str(model))
    code, message = run(workspace, "verify", str(model))
    assert code == 2 and "trust.keys entry 'missing.pub'" in message


def test_notebook_and_cosign_commands(workspace: Workspace, model: Path) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")])
    nbformat.write(nb, workspace.root / "a.ipynb")
    assert run(workspace, "sign", str(workspace.root / "a.ipynb"), "--scope", "executed")[0] == 0
    code, out = run(workspace, "verify", str(workspace.root / "a.ipynb"), "--json")
    assert code == 0 and json.loads(out)["algorithm"] == "sha256, scope executed"
    blob = model / "weights.safetensors"
    assert run(workspace, "cosign", "sign-blob", str(blob))[0] == 0
    code, out = run(workspace, "cosign", "verify-blob", str(blob), "--json")
    assert code == 0 and json.loads(out)["kind"] == "blob"


def test_magics_sign_locally_without_a_server(workspace: Workspace, model: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    sign_magics.sign_model(f"{model} --hash sha256")
    assert capsys.readouterr().out.startswith(f"signed model {model} -> {model}.sig with key ")
    sign_magics.verify_model(str(model))
    assert capsys.readouterr().out.startswith(f"VERIFIED model {model}")
    (model / "extra.py").write_text("x")
    with pytest.raises(UsageError, match=r"verify_model: FAILED model .*extra.py: file added"):
        sign_magics.verify_model(str(model))
    with pytest.raises(UsageError, match="unrecognized arguments: --nope"):
        sign_magics.sign_model(f"{model} --nope")
    with pytest.raises(UsageError, match=r"sign_model: .*no key named 'missing'"):
        sign_magics.sign_model(f"{model} --key missing")


def test_html_card_escapes() -> None:
    from securenb.signing.result import Verification

    result = Verification("model", "<m>", "<m>.sig", verified=False, trust="untrusted",
                          problems=("<script>x</script>",))
    page = sign_magics.to_html(result)
    assert "&lt;script&gt;" in page and "<script>" not in page and "NOT verified" in page


@pytest.mark.parametrize("algorithm", ["sha256", "blake3"])
def test_a_signed_model_shows_signed_in_the_sidebar_whatever_the_hash(
        workspace: Workspace, model: Path, algorithm: str) -> None:
    """The sidebar (securenb.server.catalog) knows files by SHA-256; a model signed with
    BLAKE3 showed "unsigned" there, its signature naming no SHA-256 of its files."""
    from securenb.server.catalog import Catalog

    code, out = run(workspace, "sign", str(model), "--hash", algorithm)
    assert code == 0, out
    catalog = Catalog(workspace)
    try:
        detail = catalog.by_path("models/net/weights.safetensors")
    finally:
        catalog.close()
    assert detail is not None and detail["badges"]["signature"]["state"] == "signed", detail


def test_a_file_changed_after_it_was_hashed_for_the_signature_is_not_recorded(
        tmp_path: Path) -> None:
    from securenb.signing.hashing import hash_file, sha256_of_signed

    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"\x00" * 100_000)
    signed = hash_file(weights, "blake3").hex()
    assert sha256_of_signed(weights, "blake3", signed) == hashlib.sha256(
        b"\x00" * 100_000).hexdigest()
    weights.write_bytes(b"\x01" * 100_000)  # swapped after the signature's hash
    with pytest.raises(SecurenbError, match=r"weights\.bin: changed while it was being signed"):
        sha256_of_signed(weights, "blake3", signed)
