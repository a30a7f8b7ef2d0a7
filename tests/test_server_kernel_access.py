"""The kernel socket under RBAC: a kernel may do only what every user who opened it may,
and has the record key sign only what kernels may record (securenb.server.kernel_access,
securenb.server.kernel_records).

Real jupyter server with SecurenbAuthorizer and named users (token -> user), real kernels
it started, driven over their websockets as those users (JupyterLab's path).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_server.auth.identity import IdentityProvider, User
from test_server_dataset import _call, _run_cell, run_cell, start_kernel
from test_server_signing import PASSPHRASE, TOKEN, Server, running_server
from tornado.httpclient import HTTPRequest
from tornado.web import RequestHandler
from tornado.websocket import websocket_connect

from securenb.core.attest import GATE_PREDICATE
from securenb.core.store import file_sha256
from securenb.core.workspace import Workspace
from securenb.signing.record import SIGNATURE_PREDICATE

USERS = {"signer-token": "signer-user", "scientist-token": "scientist-user",
         "runner-token": "runner-user", TOKEN: "watcher"}  # TOKEN: the start-up poll's
ROLES = {"signer-user": ["signer"], "scientist-user": ["scientist"], "runner-user": ["runner"],
         "watcher": ["viewer"]}


class TokenUsers(IdentityProvider):
    """Test identity (loaded by the server process): ``token <name>-token`` is ``<name>-user``."""

    async def get_user_token(self, handler: RequestHandler) -> User | None:
        auth = handler.request.headers.get("Authorization", "")
        name = USERS.get(auth.removeprefix("token ").strip())
        return User(name) if name else None


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    base = tmp_path_factory.mktemp("kernel-access")
    root, runtime, config = base / "project", base / "runtime", base / "config"
    (root / "models").mkdir(parents=True)
    (root / "models" / "m.bin").write_bytes(b"weights" * 100)
    (root / "models" / "g.bin").write_bytes(b"gated" * 100)  # only the gate tests' records
    config.mkdir()
    (config / "jupyter_server_config.py").write_text(
        'c.ServerApp.authorizer_class = "securenb.server.authorizer.SecurenbAuthorizer"\n'
        'c.ServerApp.identity_provider_class = "test_server_kernel_access.TokenUsers"\n'
        f"c.SecurenbAuthorizer.user_roles = {ROLES!r}\n")
    Workspace.init(root, PASSPHRASE)
    (root / "securenb.toml").write_text(  # runs kernels, nothing of securenb's
        '[permissions]\nrunner = ["*:read", "kernels:*", "sessions:*", "events:*"]\n')
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(runtime),
           "SECURENB_KEY_PASSPHRASE": PASSPHRASE, "JUPYTER_CONFIG_DIR": str(config),
           "JUPYTER_DATA_DIR": str(base / "data"), "IPYTHONDIR": str(base / "ipython"),
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent),
                                          os.environ.get("PYTHONPATH", "")])}
    with running_server(root, runtime, env, base / "server.log") as srv:
        yield srv


def _kernel(server: Server, token: str) -> str:
    kernel_id = start_kernel(server, token)
    status, out = run_cell(server, token, kernel_id,
                           f"import os\n%load_ext securenb\nos.chdir({str(server.root)!r})\n")
    assert status == "ok", out
    return kernel_id


def _denials(root: Path) -> list[dict[str, Any]]:
    return [dict(r.entry.details) for r in Workspace(root).audit_log.tail(200)
            if r.entry.action == "access.deny"]


def test_a_signers_kernel_signs_and_the_record_names_its_users(server: Server) -> None:
    kernel_id = _kernel(server, "signer-token")
    status, out = run_cell(server, "signer-token", kernel_id, "%sign_model models/m.bin\n")
    assert status == "ok", out
    ws = Workspace(server.root)
    digest = file_sha256(server.root / "models" / "m.bin.sig")[0]
    records = ws.store.attestations_for(digest, SIGNATURE_PREDICATE)
    _, statement = ws.load_attestation(records[0].envelope)
    assert statement["predicate"]["requester"] == {"kernel": kernel_id, "users": "signer-user"}


def test_a_kernel_a_scientist_also_opened_does_not_sign(server: Server) -> None:
    """Anyone who can run code in the kernel can send its requests: all must be signers."""
    kernel_id = _kernel(server, "signer-token")
    status, out = run_cell(server, "scientist-token", kernel_id, "1 + 1\n")  # she joins
    assert status == "ok", out
    (server.root / "models" / "m.bin.sig").unlink(missing_ok=True)
    status, out = run_cell(server, "signer-token", kernel_id, "%sign_model models/m.bin\n")
    assert status == "error" and "user 'scientist-user' may not sign" in out, out
    assert not (server.root / "models" / "m.bin.sig").exists()
    denial = _denials(server.root)[-1]
    assert denial["user"] == "scientist-user" and denial["action"] == "sign", denial
    assert denial["kernel"] == kernel_id and "securenb:sign" in denial["reason"], denial


def test_a_kernel_without_the_scan_permission_records_no_scan(server: Server) -> None:
    kernel_id = _kernel(server, "runner-token")
    status, out = run_cell(server, "runner-token", kernel_id,
                           "%scan_model models/m.bin --no-fail\n")
    assert status == "ok", out
    assert "not recorded" in out and "user 'runner-user' may not scan models" in out, out
    assert _denials(server.root)[-1]["action"] == "scan"


_FORGE_GATE = """
from securenb.core.attest import GATE_PREDICATE, Subject, make_statement
from securenb.core.store import file_sha256
from securenb.core.store import file_sha256
from securenb.core.workspace import Workspace
from securenb.signing.remote import RemoteSigner
ws = Workspace.find()
digest = file_sha256("models/m.bin")[0]
predicate = {predicate!r}
RemoteSigner.for_this_kernel().attest(ws.root, make_statement(
    [Subject("models/m.bin", digest)], GATE_PREDICATE, predicate))
"""


def test_a_kernel_cannot_record_a_gate_verdict(server: Server) -> None:
    from securenb.gate import evaluate

    ws = Workspace(server.root)
    real = evaluate(ws, server.root / "models" / "m.bin", record=False)
    predicate = {**real.to_predicate(), "outcome": "PASS"}
    kernel_id = _kernel(server, "signer-token")  # even an admin-like signer's kernel
    status, out = run_cell(server, "signer-token", kernel_id,
                           _FORGE_GATE.format(predicate=predicate))
    assert status == "error" and "may not have" in out and "gate" in out, out
    denial = _denials(server.root)[-1]
    assert denial["action"] == "record" and denial["user"] == "signer-user", denial


_GATE = """
%scan_model models/g.bin --no-fail
verdict = %gate models/g.bin --no-fail
print(type(verdict).__name__, verdict.outcome, verdict.attestation)
"""


def _gate_records(root: Path) -> list[str]:
    ws = Workspace(root)
    return [r.envelope for r in ws.store.attestations_for(
        file_sha256(root / "models" / "g.bin")[0], GATE_PREDICATE)]


async def _gate_watching_events(server: Server, kernel_id: str
                                ) -> tuple[str, str, dict[str, Any]]:
    """Run _GATE while subscribed to the server's events (as the sidebar is): its
    gate-decided event."""
    url = server.url.replace("http://", "ws://") + "/api/events/subscribe"
    events = await websocket_connect(HTTPRequest(url, headers={"Authorization": f"token {TOKEN}"}))
    try:
        status, out = await _run_cell(server, "scientist-token", kernel_id, _GATE, 300)
        deadline = asyncio.get_running_loop().time() + 60
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            assert remaining > 0, "no gate-decided event"
            message = await asyncio.wait_for(events.read_message(), remaining)
            assert message is not None, "the events socket closed"
            event = json.loads(message)
            if event.get("schema_id") == "https://securenb.dev/events/gate-decided/v1":
                return status, out, event
    finally:
        events.close()


def test_gate_in_a_server_kernel_is_the_servers_verdict_signed_by_it(server: Server) -> None:
    """%gate asks the server, which evaluates over its records and signs with its record key
    (the kernel holds no key: evaluating there would fail, its verdict is never signed)."""
    before = _gate_records(server.root)
    kernel_id = _kernel(server, "scientist-token")
    status, out, event = asyncio.run(_gate_watching_events(server, kernel_id))
    assert status == "ok", out
    name, outcome, envelope = out.split("\n")[-2].split()
    assert name == "GateVerdict" and outcome == "INCOMPLETE", out  # not signed, not trained
    assert "gate INCOMPLETE: models/g.bin" in out and "[   PASS] scan" in out, out
    assert _gate_records(server.root) == [envelope, *before]
    ws = Workspace(server.root)
    _, statement = ws.load_attestation(envelope)  # verifies under the workspace's record key
    assert statement["predicate"]["outcome"] == "INCOMPLETE"
    entries = [r.entry for r in ws.audit_log.tail(20)]
    decided = next(e for e in reversed(entries) if e.action == "gate.evaluate")
    assert decided.details["attestation"] == f"sha256:{envelope}"
    assert (decided.details["kernel"], decided.details["users"]) == (kernel_id,
                                                                      "scientist-user")
    signed = next(e for e in reversed(entries) if e.action == "attestation.sign")
    assert signed.details["envelope"] == f"sha256:{envelope}"
    assert signed.details["kernel"] == kernel_id  # the gate-decided event names the kernel
    digest = file_sha256(server.root / "models" / "g.bin")[0]
    assert (event["digest"], event["actor"]) == (f"sha256:{digest}", f"kernel {kernel_id}")
    detail = _call(server, TOKEN, "GET", "/securenb/api/artifacts/by-path?path=models/g.bin")
    assert detail["gate"]["verdict"] == "incomplete", detail  # the sidebar's badge


def test_gate_without_no_fail_stops_the_cell_with_the_servers_verdict(server: Server) -> None:
    kernel_id = _kernel(server, "scientist-token")
    status, out = run_cell(server, "scientist-token", kernel_id,
                           "%gate models/g.bin --no-record\nprint('went on')\n")
    assert status == "error" and "gate: INCOMPLETE for models/g.bin (" in out, out
    assert "went on" not in out


def test_a_kernel_without_the_gate_permission_gets_no_verdict(server: Server) -> None:
    before = _gate_records(server.root)
    kernel_id = _kernel(server, "runner-token")
    status, out = run_cell(server, "runner-token", kernel_id, _GATE)
    assert status == "error" and "user 'runner-user' may not evaluate the gate" in out, out
    assert _gate_records(server.root) == before
    denial = _denials(server.root)[-1]
    assert (denial["action"], denial["user"], denial["kernel"]) == ("gate", "runner-user",
                                                                    kernel_id), denial
    assert denial["resource"].endswith("models/g.bin"), denial


def test_a_gate_request_outside_the_root_or_malformed_is_refused(server: Server) -> None:
    kernel_id = _kernel(server, "scientist-token")
    for line, error in [("%gate /etc/hostname", "outside the server's root folder"),
                        ("%gate sha256:zz", "'digest' must be sha256:<hex>")]:
        status, out = run_cell(server, "scientist-token", kernel_id, line + "\n")
        assert status == "error" and error in out, out


def test_gate_under_a_server_without_the_extension_evaluates_only_unrecorded(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A kernel of a Jupyter server without securenb has no server to ask: it may evaluate
    (--no-record), but not sign a verdict itself (its key would be in the kernel)."""
    from kernel_support import run_in_kernel

    runtime = tmp_path / "runtime"
    runtime.mkdir()
    Workspace.init(tmp_path / "project", PASSPHRASE)
    (tmp_path / "project" / "model.bin").write_bytes(b"weights")
    (runtime / f"jpserver-{os.getpid()}.json").write_text("{}")  # this process "serves"
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(runtime))
    monkeypatch.setenv("JPY_PARENT_PID", str(os.getpid()))
    cells = run_in_kernel(tmp_path / "project", "%load_ext securenb", "%gate model.bin",
                          "v = %gate model.bin --no-record --no-fail\nprint(v.outcome)")
    errors = "".join(o.text for o in cells[1].outputs if o.output_type == "stream")
    assert "gate: this kernel was started by a Jupyter server without the securenb" in errors
    assert [o.text for o in cells[2].outputs if o.output_type == "stream"] == ["INCOMPLETE\n"]
    assert not Workspace(tmp_path / "project").store.attestations_for(
        file_sha256(tmp_path / "project" / "model.bin")[0], GATE_PREDICATE)


_SECURE_TRAIN_CLAIM = """
from securenb.core.attest import RunProvenance, Subject
from securenb.core.store import file_sha256
from securenb.core.workspace import Workspace
ws = Workspace.find()
prov = RunProvenance(build_type="secure-train", run_id="r1", started="2026-01-01T00:00:00Z",
                     finished="2026-01-01T00:00:01Z", external_parameters={{}},
                     internal_parameters={{"requester": {{"kernel": "someone-else"}}}},
                     builder="bwrap")
record = ws.attest(prov.statement([Subject("models/m.bin", file_sha256("models/m.bin")[0])]))
print(record.envelope)
"""


def test_a_kernels_run_provenance_names_the_kernel_and_its_users(server: Server) -> None:
    kernel_id = _kernel(server, "scientist-token")
    status, out = run_cell(server, "scientist-token", kernel_id, _SECURE_TRAIN_CLAIM.format())
    assert status == "ok", out
    _, statement = Workspace(server.root).load_attestation(out.split()[-1])
    internal = statement["predicate"]["buildDefinition"]["internalParameters"]
    assert internal["requester"] == {"kernel": kernel_id, "users": "scientist-user"}


def test_the_gate_names_the_kernel_that_claimed_a_runs_provenance(server: Server) -> None:
    """A %%secure_train provenance is the word of the kernel that ran it: counted, and the
    verdict says whose word it is (docs/server.md, what the gate trusts)."""
    kernel_id = _kernel(server, "scientist-token")
    status, out = run_cell(server, "scientist-token", kernel_id, _SECURE_TRAIN_CLAIM.format()
                           + "%gate models/m.bin --no-fail --no-record\n")
    assert status == "ok", out
    line = next(x for x in out.splitlines() if "isolated_training" in x)
    assert f"(claimed by kernel {kernel_id}, users scientist-user)" in line, out


def test_a_policy_can_refuse_a_kernels_word_for_isolation(server: Server) -> None:
    """With ``[gate] trust_kernel_runs = false`` a run a kernel recorded is not counted:
    a cell that claims a bwrap run it never made no longer passes ``isolated_training``."""
    from securenb.gate import evaluate

    kernel_id = _kernel(server, "scientist-token")
    isolated = '"sandbox": {"backend": "bwrap", "unsafe": False, "network": "none"}, '
    claim = _SECURE_TRAIN_CLAIM.format().replace('internal_parameters={"requester"',
                                                 'internal_parameters={' + isolated + '"requester"')
    assert isolated in claim
    status, out = run_cell(server, "scientist-token", kernel_id, claim)
    assert status == "ok", out
    model = server.root / "models" / "m.bin"
    rule = next(r for r in evaluate(Workspace(server.root), model, record=False).rules
                if r.rule == "isolated_training")
    assert rule.status == "pass" and "claimed by kernel" in rule.found, rule
    policy = server.root / "securenb.toml"
    policy.write_text("[gate]\ntrust_kernel_runs = false\n")
    try:
        verdict = evaluate(Workspace(server.root), model, record=False)
    finally:
        policy.unlink()
    rule = next(r for r in verdict.rules if r.rule == "isolated_training")
    assert rule.status == "unknown" and verdict.outcome != "PASS", rule
    assert "a kernel's own claim (policy [gate] trust_kernel_runs = false)" in rule.found


def test_a_kernel_cannot_append_run_or_gate_audit_entries(server: Server) -> None:
    kernel_id = _kernel(server, "signer-token")
    for action in ("run.finish", "gate.evaluate", "isolated_kernel.run", "access.deny"):
        status, out = run_cell(server, "signer-token", kernel_id,
                               "from securenb.core.workspace import Workspace\n"
                               f"Workspace.find().audit({action!r}, 'run:x', {{}})\n")
        assert status == "error" and f"may not append {action!r}" in out, out
    assert not [r for r in Workspace(server.root).audit_log.tail(200)
                if r.entry.action == "run.finish"]


_CAPS = """
import os
import re
from securenb.server.drop_caps import DROPPED
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
held = {name for name, cap in DROPPED.items()
        for field in ("CapEff", "CapPrm", "CapBnd", "CapInh", "CapAmb")
        if int(status[field], 16) >> cap & 1}
try:
    open(f"/proc/{os.environ['JPY_PARENT_PID']}/mem", "rb", 0)
    mem = "open"
except PermissionError:
    mem = "refused"
print(sorted(held), status["NoNewPrivs"].strip(), mem, os.geteuid())
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="a root server's kernels (CI, containers)")
def test_a_root_servers_kernel_lacks_the_capabilities_that_read_its_memory(
        server: Server) -> None:
    kernel_id = _kernel(server, "scientist-token")
    status, out = run_cell(server, "scientist-token", kernel_id, _CAPS)
    assert status == "ok", out
    assert out.split("\n")[-2] == "[] 1 refused 0", out  # still root, but cannot read it


@pytest.mark.parametrize(("statement", "error"), [
    ([], "must be an in-toto statement"),
    ({"predicateType": "https://slsa.dev/provenance/v1", "predicate": {"buildDefinition": 1}},
     "without a buildDefinition"),
    ({"predicateType": "https://slsa.dev/provenance/v1",
      "predicate": {"buildDefinition": {"buildType": "https://securenb.dev/buildtypes/"
                                                     "isolated-kernel/v1"}}},
     "not of build type 'https://securenb.dev/buildtypes/isolated-kernel/v1'"),
    ({"predicateType": "https://securenb.dev/attestation/verification/v1", "predicate": {}},
     "may not have 'https://securenb.dev/attestation/verification/v1' records signed"),
])
def test_a_malformed_or_foreign_kernel_statement_is_one_line(statement: Any, error: str
                                                             ) -> None:
    from securenb.errors import SecurenbError
    from securenb.server.kernel_records import attest_need

    with pytest.raises(SecurenbError, match=re.escape(error)):
        attest_need(statement)
