"""Signing and verifying forwarded to a signer outside the kernel keep every option and say who.

Issue 10 leftovers: ``%verify_model --key K`` must pin the expected signer
whether the kernel verifies itself, asks the server that started it, or asks
the local agent (as ``securenb verify --key`` does); and a signature says
truthfully what made it (``via``: local, server or agent) in the magic's
output, the JSON and the audit entry. Real jupyter server, real agent, real
kernels.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from jupyter_client.blocking import BlockingKernelClient
from jupyter_client.manager import KernelManager
from test_agent import CLI, _env, agent, agent_kernel, project  # noqa: F401 - fixtures
from test_server_signing import Server, _run, kernel_client, server  # noqa: F401 - fixture
from test_server_vault import _drain

from securenb.core.keys import PrivateKey
from securenb.core.workspace import Workspace
from securenb.signing import SIGNATURE_PREDICATE


def _keys(root: Path) -> tuple[Path, Path, str]:
    """(release.pub of the workspace, other.pub of a stranger, the stranger's key id)."""
    release, other = root / "release.pub", root / "other.pub"
    release.write_bytes(Workspace(root).keystore.export_public("release"))
    stranger = PrivateKey.generate().public
    other.write_bytes(stranger.pem())
    return release, other, stranger.key_id


def _pins_through(client: BlockingKernelClient, root: Path, model: str) -> None:
    """Signed by the workspace's release key: --key other.pub fails naming both keys,
    --key release.pub passes."""
    release, other, other_id = _keys(root)
    out = _run(client, f"import os\nos.chdir({str(root)!r})\n%load_ext securenb\n"
                       f"%sign_model {model}\n")
    assert out[-1] == ("reply", {"status": "ok"}), out
    out = _run(client, f"%verify_model {model} --key {other}\n")
    assert out[-1][1]["status"] == "error", out
    error = _errors(out)
    assert f"but --key pins key {other_id[:16]}" in error, error
    assert "FAILED model" in error and "signed by key" in error, error
    out = _run(client, f"%verify_model {model} --key {release}\n")
    assert out[-1] == ("reply", {"status": "ok"}), out
    text = out[0][1]["data"]["text/plain"]
    assert text.startswith("VERIFIED model "), text


def _errors(out: list[tuple[str, dict[str, Any]]]) -> str:
    """What a cell that failed told its user: stderr (a UsageError) or the exception."""
    return "".join(c.get("text", "") if kind == "stream" else c.get("evalue", "")
                   for kind, c in out if kind == "error" or c.get("name") == "stderr")


def _via_of(root: Path, signature: Path) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(via in the attestation, its requester, the audit entry's details) of ``signature``."""
    import hashlib

    ws = Workspace(root)
    digest = hashlib.sha256(signature.read_bytes()).hexdigest()
    record = ws.store.attestations_for(digest, SIGNATURE_PREDICATE)[0]
    _, statement = ws.load_attestation(record.envelope)
    entry = next(r.entry for r in reversed(ws.audit_log.tail(50))
                 if r.entry.action == "model.sign")
    return statement["predicate"]["via"], statement["predicate"].get("requester", {}), \
        entry.details


def test_key_pins_the_signer_through_the_server(server: Server) -> None:  # noqa: F811
    (server.root / "models" / "pinned.bin").write_bytes(b"pinned weights")
    with kernel_client(server) as (kernel_id, client):
        _pins_through(client, server.root, "models/pinned.bin")
    via, requester, details = _via_of(server.root, server.root / "models" / "pinned.bin.sig")
    assert (via, requester, details["via"]) == ("server", {"kernel": kernel_id}, "server")


def test_server_reads_no_key_file_a_kernel_names(server: Server) -> None:  # noqa: F811
    """The kernel sends key material, never a reference the server would open for it."""
    (server.root / "models" / "probe.bin").write_bytes(b"probe")
    code = ("from securenb.signing.remote import RemoteSigner\n"
            "remote = RemoteSigner.for_this_kernel()\n"
            f"remote._call('/v1/verify', {{'path': {str(server.root / 'models/probe.bin')!r}, "
            "'signature': None, 'keys': ['file:/etc/hostname']})\n")
    with kernel_client(server) as (_, client):
        out = _run(client, code)
    error = _errors(out)
    assert "the securenb server refused: verify request: keys[0]" in error, error
    assert "not a PEM public key" in error, error
    assert Path("/etc/hostname").read_text().strip() not in error


def test_key_pins_the_signer_through_the_agent(
        project: Path, agent_kernel: BlockingKernelClient) -> None:  # noqa: F811
    (project / "model.bin").write_bytes(b"weights")
    _pins_through(agent_kernel, project, "model.bin")


def test_agent_signature_says_agent(
        project: Path, agent_kernel: BlockingKernelClient) -> None:  # noqa: F811
    (project / "model.bin").write_bytes(b"weights")
    out = _run(agent_kernel, "%load_ext securenb\n%sign_model model.bin\n")
    assert out[-1] == ("reply", {"status": "ok"}), out
    shown = out[0][1]["data"]
    assert "via the securenb agent" in shown["text/plain"], shown
    assert "<td>agent</td>" in shown["text/html"], shown
    via, requester, details = _via_of(project, project / "model.bin.sig")
    assert (via, details["via"]) == ("agent", "agent")
    assert list(requester) == ["process"] and requester["process"].startswith("pid:")


def test_cli_signature_through_the_agent_says_agent(
        project: Path, agent: subprocess.Popen[bytes]) -> None:  # noqa: F811
    (project / "model.bin").write_bytes(b"weights")
    out = subprocess.run([*CLI, "sign", "model.bin", "--json"], cwd=project, env=_env(),
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["via"] == "agent"
    text = subprocess.run([*CLI, "sign", "model.bin"], cwd=project, env=_env(),
                          capture_output=True, text=True, check=True).stdout
    assert "via:       the securenb agent" in text, text
    assert _via_of(project, project / "model.bin.sig")[0] == "agent"


def test_local_signature_says_local(project: Path) -> None:  # noqa: F811
    (project / "model.bin").write_bytes(b"weights")
    env = {**_env(), "SECURENB_KEY_PASSPHRASE": "agent passphrase"}
    out = subprocess.run([*CLI, "sign", "model.bin", "--json"], cwd=project, env=env,
                         capture_output=True, text=True, check=True)
    assert json.loads(out.stdout)["via"] == "local"
    via, requester, details = _via_of(project, project / "model.bin.sig")
    assert (via, requester, details["via"]) == ("local", {}, "local")


def test_key_pins_the_signer_in_a_kernel_that_signs_itself(tmp_path: Path) -> None:
    """The escape hatch (``in_kernel``, passphrase in the kernel): --key pins there too."""
    root = tmp_path / "project"
    Workspace.init(root, "agent passphrase")
    (root / "model.bin").write_bytes(b"weights")
    manager = KernelManager(kernel_name="python3")
    manager.start_kernel(cwd=str(root), env={**_env(), "XDG_RUNTIME_DIR": str(tmp_path),
                                             "SECURENB_KEY_PASSPHRASE": "agent passphrase"})
    client = manager.blocking_client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=120)
        _drain(client)
        _pins_through(client, root, "model.bin")
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    assert _via_of(root, root / "model.bin.sig")[0] == "local"


def test_sigstore_through_the_agent_uses_the_callers_token(
        project: Path, agent: subprocess.Popen[bytes]) -> None:  # noqa: F811
    """`securenb sign --sigstore` signs as its caller, whose token the agent lacks: the
    token travels with the request (the agent then needs the network, absent here), and
    it is in no output."""
    (project / "model.bin").write_bytes(b"weights")
    token = "caller-oidc-token-3f9a"  # a test-only token
    out = subprocess.run([*CLI, "sign", "model.bin", "--sigstore"], cwd=project,
                         env={**_env(), "SIGSTORE_ID_TOKEN": token}, capture_output=True,
                         text=True, check=False, timeout=300)
    assert out.returncode == 2, out
    assert "needs an OIDC identity token" not in out.stderr, out.stderr
    assert "error: the securenb agent refused: Sigstore keyless signing failed" in out.stderr
    assert token not in out.stderr + out.stdout
    assert token.encode() not in Path(f"/proc/{agent.pid}/environ").read_bytes()
    assert not (project / "model.bin.sig").exists()


def test_cli_verify_is_recorded_by_the_agent_and_pinned(
        project: Path, agent: subprocess.Popen[bytes]) -> None:  # noqa: F811
    """No passphrase here, the agent runs: `securenb verify --key` is pinned, and recorded
    (it used to say "not recorded in the workspace")."""
    (project / "model.bin").write_bytes(b"weights")
    release, other, other_id = _keys(project)
    subprocess.run([*CLI, "sign", "model.bin"], cwd=project, env=_env(), check=True,
                   capture_output=True)
    bad = subprocess.run([*CLI, "verify", "model.bin", "--key", str(other), "--json"],
                         cwd=project, env=_env(), capture_output=True, text=True, check=False)
    assert bad.returncode == 1, bad.stderr
    result = json.loads(bad.stdout)
    assert f"but --key pins key {other_id[:16]}" in result["problems"][0], result
    good = subprocess.run([*CLI, "verify", "model.bin", "--key", str(release), "--json"],
                          cwd=project, env=_env(), capture_output=True, text=True, check=False)
    assert good.returncode == 0, good.stderr
    result = json.loads(good.stdout)
    assert result["verified"] is True and result["attestation"], result
    assert not any("not recorded" in n for n in result["notes"]), result
    verifies = [r.entry for r in Workspace(project).audit_log.tail(50)
                if r.entry.action == "model.verify"]
    assert [e.details["verified"] for e in verifies] == [False, True]
