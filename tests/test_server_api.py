"""The securenb REST API against a real jupyter_server (pytest-jupyter), with RBAC on.

Each default role has a user; a test identity provider maps tokens to those
users, so every request goes through Jupyter's real authentication, our
Authorizer, and the handlers. The workspace is real: a model recorded, signed
and scanned with the CLI before the server starts.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from jupyter_server.auth.identity import IdentityProvider, User
from tornado.httpclient import HTTPClientError, HTTPResponse
from tornado.web import RequestHandler
from traitlets.config import Config

from securenb.core.workspace import Workspace
from securenb.server.api import RateLimiter
from securenb.server.authorizer import SecurenbAuthorizer
from securenb.server.rbac import ACTIONS, DEFAULT_ROLES, RESOURCE, decide

pytest_plugins = ("pytest_jupyter.jupyter_server",)

PASSPHRASE = "api test passphrase"  # a test-only passphrase
ROLES = tuple(DEFAULT_ROLES)
USERS = {f"{role}-token": f"{role}-user" for role in ROLES} | {"nobody-token": "nobody"}

Fetch = Callable[..., Awaitable[HTTPResponse]]


class TokenUsers(IdentityProvider):
    """Test identity: ``Authorization: token <role>-token`` is ``<role>-user``."""

    async def get_user_token(self, handler: RequestHandler) -> User | None:
        auth = handler.request.headers.get("Authorization", "")
        name = USERS.get(auth.removeprefix("token ").strip())
        return User(name) if name else None


@pytest.fixture
def project(jp_root_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("SECURENB_KEY_PASSPHRASE", PASSPHRASE)
    root = Path(jp_root_dir)
    Workspace.init(root, PASSPHRASE)
    (root / "models").mkdir()
    (root / "models" / "m.bin").write_bytes(b"weights" * 1000)
    (root / "notes.txt").write_text("hello")
    env = {**os.environ}
    for args in (["record", "models/m.bin"], ["sign", "models/m.bin"], ["scan", "models/m.bin"]):
        subprocess.run([str(Path(sys.executable).parent / "securenb"), *args], cwd=root, env=env,
                       check=True, capture_output=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.bin").write_bytes(b"secret")
    (root / "escape").symlink_to(outside)
    return root


@pytest.fixture
def jp_server_config(project: Path) -> Config:
    return Config({
        "ServerApp": {"jpserver_extensions": {"securenb.server": True},
                      "authorizer_class": SecurenbAuthorizer,
                      "identity_provider_class": TokenUsers},
        "SecurenbAuthorizer": {"user_roles": {f"{r}-user": [r] for r in ROLES}},
        "SecurenbExtension": {"write_rate": 1.0, "write_burst": 20},
    })


async def call(fetch: Fetch, role: str, method: str, url: str, body: Any = None, /,
               **params: Any) -> tuple[int, Any]:
    """Status and JSON of a request as ``role``'s user (errors included)."""
    kwargs: dict[str, Any] = {"method": method,
                              "headers": {"Authorization": f"token {role}-token"}}
    if body is not None or method == "POST":
        kwargs["body"] = json.dumps(body if body is not None else {})
    if params:
        kwargs["params"] = params
    try:
        response = await fetch(*url.split("/"), **kwargs)
    except HTTPClientError as exc:
        assert exc.response is not None
        return exc.code, json.loads(exc.response.body)
    return response.code, json.loads(response.body)


SPEC = json.loads((Path(__file__).parents[1] / "securenb/server/openapi.json").read_text())


def conforms(data: Any, name: str) -> None:
    """``data`` matches the OpenAPI document's schema ``name`` (the sidebar's contract)."""
    schema = {"$ref": f"#/components/schemas/{name}", "components": SPEC["components"]}
    jsonschema.validate(data, schema, cls=jsonschema.Draft202012Validator)


def audit_entries(root: Path) -> list[dict[str, Any]]:
    lines = (root / ".securenb" / "audit" / "entries.jsonl").read_bytes().splitlines()
    return [json.loads(line) for line in lines]


async def test_every_endpoint_as_admin(jp_fetch: Fetch, project: Path) -> None:
    status, me = await call(jp_fetch, "admin", "GET", "securenb/api/me")
    assert status == 200 and me["roles"] == ["admin"]
    conforms(me, 'Me')
    assert all(me["actions"][a]["allowed"] for a in ACTIONS)

    status, spec = await call(jp_fetch, "admin", "GET", "securenb/api/openapi.json")
    assert status == 200 and spec["openapi"].startswith("3.1")

    status, page = await call(jp_fetch, "admin", "GET", "securenb/api/artifacts")
    assert status == 200 and page["total"] >= 1
    conforms(page, 'ArtifactPage')
    model = next(a for a in page["items"] if a["path"] == "models/m.bin")
    assert model["kind"] == "model"
    assert model["badges"]["signature"]["state"] == "signed"
    assert model["badges"]["scan"]["state"] in ("safe", "unknown", "unsafe")

    status, page = await call(jp_fetch, "admin", "GET", "securenb/api/artifacts",
                              kind="dataset")
    assert status == 200 and all(a["kind"] == "dataset" for a in page["items"])
    status, page = await call(jp_fetch, "admin", "GET", "securenb/api/artifacts", q="m.bin",
                              limit=1, offset=0)
    assert status == 200 and page["limit"] == 1 and len(page["items"]) == 1
    assert page["items"][0]["path"].startswith("models/m.bin") and page["total"] >= 1
    status, rest = await call(jp_fetch, "admin", "GET", "securenb/api/artifacts", q="m.bin",
                              limit=1, offset=1)
    assert page["total"] == 1 or rest["items"][0]["path"] != page["items"][0]["path"]

    status, detail = await call(jp_fetch, "admin", "GET",
                                f"securenb/api/artifacts/{model['digest']}")
    assert status == 200 and detail["signature"]["verified"] is True
    conforms(detail, 'ArtifactDetail')
    assert detail["scan"] is not None and detail["audit"]
    assert all(e["inclusion"] == "verified" for e in detail["audit"])
    kinds = {n["kind"] for n in detail["provenance"]["nodes"]}
    assert {"model", "signature", "scan"} <= kinds
    status, same = await call(jp_fetch, "admin", "GET", "securenb/api/artifacts/by-path",
                              path="models/m.bin")
    assert status == 200 and same["digest"] == model["digest"]

    status, runs = await call(jp_fetch, "admin", "GET", "securenb/api/runs")
    assert status == 200 and runs["total"] == len(runs["items"])
    conforms(runs, 'RunPage')
    status, err = await call(jp_fetch, "admin", "GET", "securenb/api/runs/nope")
    assert status == 404 and err["error"]

    status, entries = await call(jp_fetch, "admin", "GET", "securenb/api/audit/entries",
                                 limit=2)
    assert status == 200 and len(entries["items"]) == 2 and entries["size"] >= 3
    conforms(entries, 'AuditPage')
    status, head = await call(jp_fetch, "admin", "GET", "securenb/api/audit/checkpoint")
    assert status == 200 and head["size"] == entries["size"]
    conforms(head, 'Checkpoint')
    status, proof = await call(jp_fetch, "admin", "GET", "securenb/api/audit/proofs/inclusion",
                               index=0)
    assert status == 200 and proof["verified"] and proof["root_hash"] == head["root_hash"]
    conforms(proof, 'InclusionProof')
    status, proof = await call(jp_fetch, "admin", "GET",
                               "securenb/api/audit/proofs/consistency", old=1)
    assert status == 200 and proof["new"] == head["size"]
    conforms(proof, 'ConsistencyProof')
    status, verified = await call(jp_fetch, "admin", "POST", "securenb/api/audit/verify")
    assert status == 200 and verified["verified"] is True, verified
    conforms(verified, 'LogVerification')

    status, scan = await call(jp_fetch, "admin", "POST", "securenb/api/scan",
                              {"path": "models/m.bin"})
    assert status == 200 and scan["verdict"] in ("safe", "unknown", "unsafe")
    assert scan["digest"] == "sha256:" + hashlib.sha256(
        b"weights" * 1000).hexdigest()  # of the bytes scanned
    conforms(scan, 'ScanResult')
    status, signed = await call(jp_fetch, "admin", "POST", "securenb/api/sign",
                                {"path": "models/m.bin", "kind": "model"})
    assert status == 200 and signed["via"] == "server"
    conforms(signed, 'SignResult')
    status, checked = await call(jp_fetch, "admin", "POST", "securenb/api/verify",
                                 {"path": "models/m.bin"})
    assert status == 200 and checked["verified"] is True
    conforms(checked, 'VerifyResult')
    status, gate = await call(jp_fetch, "admin", "POST", "securenb/api/gate",
                              {"path": "models/m.bin"})
    assert status in (200, 501) and ("verdict" in gate or "securenb.gate" in gate["error"])


async def test_errors_are_one_line_json(jp_fetch: Fetch, project: Path) -> None:
    for method, path, body, params, code in (
        ("GET", "securenb/api/artifacts/sha256:zz", None, {}, 400),
        ("GET", "securenb/api/artifacts/sha256:" + "0" * 64, None, {}, 404),
        ("GET", "securenb/api/artifacts", None, {"limit": "many"}, 400),
        ("GET", "securenb/api/artifacts", None, {"kind": "weird"}, 400),
        ("GET", "securenb/api/audit/proofs/inclusion", None, {"index": 10**6}, 400),
        ("POST", "securenb/api/sign", {"nope": 1}, {}, 400),
        ("POST", "securenb/api/scan", {"path": "notes-missing.bin"}, {}, 400),
    ):
        status, err = await call(jp_fetch, "admin", method, path, body, **params)
        assert status == code, (path, err)
        assert set(err) >= {"error", "status"} and err["status"] == code
        conforms(err, "Error")
        assert "\n" not in err["error"] and "Traceback" not in err["error"]


# which endpoint exercises each action; the others are checked through GET me
ENDPOINTS: dict[str, tuple[str, str, dict[str, Any] | None]] = {
    "read": ("GET", "securenb/api/artifacts", None),
    "sign": ("POST", "securenb/api/sign", {"path": "models/m.bin"}),
    "verify": ("POST", "securenb/api/verify", {"path": "models/m.bin"}),
    "scan": ("POST", "securenb/api/scan", {"path": "models/m.bin"}),
    "audit": ("GET", "securenb/api/audit/entries", None),
}


async def test_rbac_matrix(jp_fetch: Fetch, project: Path) -> None:
    """Each default role (and a user with none) x each action: allowed, or 403 and audited."""
    for role in [*ROLES, "nobody"]:
        await _check_role(jp_fetch, project, role)


async def _check_role(jp_fetch: Fetch, project: Path, role: str) -> None:
    status, me = await call(jp_fetch, role, "GET", "securenb/api/me")
    assert status == 200
    for action in ACTIONS:
        expected = decide(DEFAULT_ROLES, [role] if role in ROLES else [], RESOURCE,
                          action).allowed
        assert me["actions"][action]["allowed"] is expected, (role, action)
        assert me["actions"][action]["reason"]
        if action not in ENDPOINTS:
            continue
        method, path, body = ENDPOINTS[action]
        before = len(audit_entries(project))
        status, reply = await call(jp_fetch, role, method, path, body)
        if expected:
            assert status == 200, (role, action, reply)
            continue
        assert status == 403, (role, action, reply)
        denials = [e for e in audit_entries(project)[before:] if e["action"] == "access.deny"]
        assert denials, f"denial of {action} to {role} not audited"
        assert denials[-1]["details"]["user"] == f"{role}-user" if role in ROLES else "nobody"
        assert denials[-1]["details"]["action"] == action
        assert denials[-1]["subject"] == f"securenb:{action}"


async def test_rbac_on_jupyter_resources(jp_fetch: Fetch, project: Path) -> None:
    """Writing contents and opening terminals are Jupyter's own actions under the same roles."""
    for role, allowed in (("viewer", False), ("scientist", True), ("deployer", False),
                          ("admin", True)):
        status, _ = await call(jp_fetch, role, "GET", "api/contents")
        assert status == 200  # every role reads
        status, reply = await call(jp_fetch, role, "POST", "api/contents", {"type": "notebook"})
        assert (status == 201) is allowed and (status == 403) is not allowed, (role, reply)
        if not allowed:
            denial = audit_entries(project)[-1]
            assert denial["action"] == "access.deny" and denial["subject"] == "contents:write"
            assert denial["details"]["user"] == f"{role}-user"
    status, _ = await call(jp_fetch, "scientist", "POST", "api/terminals")
    assert status == 403  # a shell would step around every other rule


async def test_paths_stay_inside_the_root(jp_fetch: Fetch, project: Path) -> None:
    for path in ("../outside/secret.bin", "/etc/hostname", "escape/secret.bin",
                 "models/../../outside/secret.bin", "a\0b"):
        for endpoint in ("securenb/api/sign", "securenb/api/scan", "securenb/api/verify"):
            status, err = await call(jp_fetch, "admin", "POST", endpoint, {"path": path})
            assert status == 400, (endpoint, path, err)
        if "\0" in path:
            continue  # tornado drops control characters from query arguments
        status, err = await call(jp_fetch, "admin", "GET", "securenb/api/artifacts/by-path",
                                 path=path)
        assert status == 400, (path, err)
    assert not list((project / "escape").glob("*.sig")), "signed a file outside the root"


async def test_oversized_and_malformed_bodies(jp_fetch: Fetch, project: Path) -> None:
    status, err = await call(jp_fetch, "admin", "POST", "securenb/api/sign",
                             {"path": "models/m.bin", "pad": "x" * 100_000})
    assert status == 413 and "body over" in err["error"]
    try:
        await jp_fetch("securenb", "api", "scan", method="POST", body="{not json",
                       headers={"Authorization": "token admin-token"})
    except HTTPClientError as exc:
        assert exc.code == 400 and exc.response is not None
        assert json.loads(exc.response.body)["error"] == "the body is not JSON"
    else:
        raise AssertionError("malformed JSON accepted")


async def test_writes_are_rate_limited(jp_fetch: Fetch, project: Path) -> None:
    codes = [(await call(jp_fetch, "admin", "POST", "securenb/api/verify",
                         {"path": "models/m.bin"}))[0] for _ in range(40)]
    assert 429 in codes and codes[0] == 200


def test_the_rate_limit_table_stays_bounded() -> None:
    """One bucket per requester, and no more than max_keys of them however many ask."""
    limiter = RateLimiter(rate=0.001, burst=1, max_keys=100)
    assert limiter.allow("owner") and not limiter.allow("owner")
    for i in range(10_000):
        assert limiter.allow(f"someone-{i}")
    assert len(limiter) == 100
    assert limiter.allow("someone-9999") is False  # the recent are still counted


async def test_no_token_no_access(jp_fetch: Fetch, project: Path) -> None:
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch("securenb", "api", "artifacts", headers={"Authorization": "token bad"})
    assert info.value.code == 403


def test_hub_scopes_give_roles() -> None:
    auth = SecurenbAuthorizer(hub_scopes=True, group_roles={"ml": ["scientist"]})
    user = User("hubby")
    user.hub_user = {"name": "hubby", "groups": ["ml"],  # type: ignore[attr-defined]
                     "scopes": ["custom:securenb:signer", "read:users"]}
    assert auth.roles_of(user) == ["scientist", "signer"]
    assert auth.decision(user, "sign", RESOURCE).allowed
    assert not auth.decision(user, "promote", RESOURCE).allowed
    assert not SecurenbAuthorizer().decision(user, "read", RESOURCE).allowed


async def _next_event(ws: Any, name: str, deadline: float) -> dict[str, Any]:
    while True:
        remaining = deadline - asyncio.get_running_loop().time()
        assert remaining > 0, f"no {name} event"
        message = await asyncio.wait_for(ws.read_message(), remaining)
        assert message is not None, "the events socket closed"
        event = json.loads(message)
        if event.get("schema_id") == f"https://securenb.dev/events/{name}/v1":
            return dict(event)


async def test_events_reach_the_browser_socket(jp_serverapp: Any, jp_fetch: Fetch,
                                               jp_ws_fetch: Any, project: Path) -> None:
    """What the CLI records and what the API signs both arrive on /api/events/subscribe.

    The CLI records while the server's event loop is busy (blocked here, as on a loaded
    machine): the record comes after the server started but before the relay's first look,
    and must still be announced (it was taken as the starting point, and lost).
    """
    await jp_serverapp.extension_manager.start_all_extensions()  # what `jupyter server` does
    ws = await jp_ws_fetch("api", "events", "subscribe",
                           headers={"Authorization": "token viewer-token"})
    deadline = asyncio.get_running_loop().time() + 60
    subprocess.run(  # blocks the loop on purpose (see the docstring)
        [str(Path(sys.executable).parent / "securenb"), "record", "notes.txt"], cwd=project,
        env={**os.environ, "SECURENB_KEY_PASSPHRASE": PASSPHRASE},  # the server scrubbed it
        check=True, capture_output=True)
    event = await _next_event(ws, "artifact-recorded", deadline)
    assert event["path"] == "notes.txt" and event["digest"].startswith("sha256:")
    assert event["actor"]
    status, _ = await call(jp_fetch, "signer", "POST", "securenb/api/sign",
                           {"path": "models/m.bin"})
    assert status == 200
    event = await _next_event(ws, "signed", deadline)
    assert event["path"] == "models/m.bin" and event["actor"] == "signer-user"
    assert PASSPHRASE not in json.dumps(event)
    (project / "models" / "m.bin").write_bytes(b"tampered")  # a failed verify is news too
    status, _ = await call(jp_fetch, "viewer", "POST", "securenb/api/verify",
                           {"path": "models/m.bin"})
    assert status == 200
    event = await _next_event(ws, "verified", deadline)
    assert event["path"] == "models/m.bin" and event["detail"] == "failed"
    ws.close()


def test_policy_names_members_and_permissions(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """[tool.securenb.roles] gives users roles; [tool.securenb.permissions] defines roles."""
    from traitlets import Unicode
    from traitlets.config import Configurable

    class Root(Configurable):
        root_dir = Unicode()

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    Workspace.init(tmp_path, PASSPHRASE)
    (tmp_path / "pyproject.toml").write_text(
        '[tool.securenb.roles]\nreviewer = ["bob", "group:qa"]\n'
        '[tool.securenb.permissions]\nreviewer = ["*:read", "gate"]\n')
    auth = SecurenbAuthorizer(parent=Root(root_dir=str(tmp_path)))
    bob, carol, eve = User("bob"), User("carol"), User("eve")
    carol.hub_user = {"groups": ["qa"]}  # type: ignore[attr-defined]
    for user in (bob, carol):
        assert auth.roles_of(user) == ["reviewer"]
        assert auth.decision(user, "gate", RESOURCE).allowed
        assert not auth.decision(user, "sign", RESOURCE).allowed
        assert not auth.decision(user, "write", "contents").allowed
    assert auth.roles_of(eve) == [] and not auth.decision(eve, "read", RESOURCE).allowed


async def test_cookie_sessions_need_the_xsrf_token(jp_fetch: Fetch, project: Path) -> None:
    """A browser session (cookie, no token) cannot POST without Jupyter's XSRF token."""
    first = await jp_fetch("securenb", "api", "me",
                           headers={"Authorization": "token signer-token"})
    cookies = [c.split(";")[0] for c in first.headers.get_list("Set-Cookie")]
    login = "; ".join(c for c in cookies if not c.startswith("_xsrf"))
    assert login, "no login cookie set"
    me = await jp_fetch("securenb", "api", "me", headers={"Cookie": login})
    assert json.loads(me.body)["user"] == "signer-user"  # the cookie alone authenticates
    signs = sum(e["action"] == "model.sign" for e in audit_entries(project))
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch("securenb", "api", "sign", method="POST",
                       body=json.dumps({"path": "models/m.bin"}), headers={"Cookie": login})
    assert info.value.code == 403
    assert sum(e["action"] == "model.sign" for e in audit_entries(project)) == signs


def test_runs_and_records_become_events(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What a kernel's %%secure_train leaves (a run row, then its audit entry) is announced."""
    from securenb.server.events import EventRelay

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    ws = Workspace.init(tmp_path, PASSPHRASE)
    relay = EventRelay(None, None, None)  # type: ignore[arg-type]  # _collect needs neither
    assert relay._collect(ws) == []  # at start: only what comes next
    ws.store.start_run("r1", "secure_train")
    ws.audit("secure_train.run", "run:r1", {"status": "ok"})
    ws.audit("model.sign", "sha256:" + "a" * 64, {"path": "m.bin", "user": "alice"})
    ws.audit("access.deny", "contents:write", {"user": "bob"})
    ws.audit("model.verify", "sha256:" + "b" * 64, {"path": "m.bin", "verified": False})
    events = relay._collect(ws)
    assert [name for name, _ in events] == ["run-started", "run-finished", "signed", "verified"]
    assert events[3][1]["path"] == "m.bin" and events[3][1]["detail"] == "failed"
    assert events[1][1]["run_id"] == "r1" and events[1][1]["detail"] == "ok"
    assert events[2][1] == {"digest": "sha256:" + "a" * 64, "path": "m.bin", "notebook": None,
                            "actor": "alice"}
    assert relay._collect(ws) == []  # each once


def _row(page: dict[str, Any], path: str) -> dict[str, Any]:
    return next(a for a in page["items"] if a["path"] == path)


async def test_a_tampered_model_shows_tampered_on_its_own_row(jp_fetch: Fetch,
                                                               project: Path) -> None:
    """The model's row (not only its .sig's) says TAMPERED after a failed verify, though the
    file's digest changed; restored, it verifies and is signed again; re-signed, the old
    failure does not stick to the new signature."""
    model = project / "models" / "m.bin"
    good = model.read_bytes()
    model.write_bytes(good + b"tampered")
    status, checked = await call(jp_fetch, "admin", "POST", "securenb/api/verify",
                                 {"path": "models/m.bin"})
    assert status == 200 and checked["verified"] is False
    status, page = await call(jp_fetch, "admin", "GET", "securenb/api/artifacts")
    assert _row(page, "models/m.bin")["badges"]["signature"]["state"] == "tampered"
    assert _row(page, "models/m.bin.sig")["badges"]["signature"]["state"] == "tampered"
    status, page = await call(jp_fetch, "admin", "GET", "securenb/api/artifacts", kind="model",
                              q="models/m.bin")
    assert _row(page, "models/m.bin")["badges"]["signature"]["state"] == "tampered"
    status, detail = await call(jp_fetch, "admin", "GET", "securenb/api/artifacts/by-path",
                                path="models/m.bin")
    assert status == 200 and detail["badges"]["signature"]["state"] == "tampered"
    assert detail["signature"]["verified"] is False
    assert "content changed" in detail["signature"]["reason"]
    assert str(project) not in detail["signature"]["reason"]  # paths relative to the root
    assert any(e["action"] == "model.verify" and e["details"]["verified"] is False
               for e in detail["audit"]), "the failed verify is not in the model's audit trail"
    status, by_digest = await call(jp_fetch, "admin", "GET",
                                   f"securenb/api/artifacts/{detail['digest']}")
    assert by_digest["badges"]["signature"]["state"] == "tampered"

    model.write_bytes(good)  # restored: the next verify passes
    status, checked = await call(jp_fetch, "admin", "POST", "securenb/api/verify",
                                 {"path": "models/m.bin"})
    assert checked["verified"] is True
    status, page = await call(jp_fetch, "admin", "GET", "securenb/api/artifacts")
    assert _row(page, "models/m.bin")["badges"]["signature"]["state"] == "signed"

    model.write_bytes(good + b"v2")  # a new version, tampered-looking until it is re-signed
    await call(jp_fetch, "admin", "POST", "securenb/api/verify", {"path": "models/m.bin"})
    status, _ = await call(jp_fetch, "admin", "POST", "securenb/api/sign",
                                {"path": "models/m.bin", "kind": "model"})
    assert status == 200
    status, page = await call(jp_fetch, "admin", "GET", "securenb/api/artifacts")
    rows = [a for a in page["items"] if a["path"] == "models/m.bin"]
    assert rows[0]["badges"]["signature"]["state"] == "signed", rows  # newest: the v2 row
    assert rows[0]["digest"] != detail["digest"]


async def test_signers_are_people_with_the_key_as_secondary(jp_fetch: Fetch,
                                                            project: Path) -> None:
    """The badge names who signed, not a key fingerprint: the CLI's user (audit log) or the
    API's user (the signed record); the key's name and fingerprint come as secondary facts."""
    import getpass

    ws = Workspace(project)
    keys = {k.key_id: k.name for k in ws.keystore.list()}
    status, page = await call(jp_fetch, "admin", "GET", "securenb/api/artifacts")
    badge = _row(page, "models/m.bin")["badges"]["signature"]
    user = os.environ.get("SECURENB_ACTOR") or getpass.getuser()
    assert badge["state"] == "signed" and badge["signer"] == user and badge["identity"] == user
    assert "CLI" in badge["identity_via"]
    assert badge["key_id"] in keys and badge["key_name"] == keys[badge["key_id"]]
    status, detail = await call(jp_fetch, "admin", "GET", "securenb/api/artifacts/by-path",
                                path="models/m.bin")
    conforms(detail, "ArtifactDetail")
    assert detail["signature"]["identity"] == user and detail["signature"]["signer"] == user
    assert detail["signature"]["key_id"] == badge["key_id"]

    status, _ = await call(jp_fetch, "signer", "POST", "securenb/api/sign",
                           {"path": "models/m.bin", "kind": "model"})
    assert status == 200
    status, page = await call(jp_fetch, "viewer", "GET", "securenb/api/artifacts")
    badge = _row(page, "models/m.bin")["badges"]["signature"]
    assert badge["signer"] == "signer-user" and badge["identity"] == "signer-user"
    assert "server" in badge["identity_via"] and badge["key_id"] in keys
    assert PASSPHRASE not in json.dumps(page)


def test_the_signer_named_is_the_one_audited_with_the_signature(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The audit entry written with a signature names its signer; a later entry naming the
    same attestation (another writer of the log) does not rename it."""
    from securenb.server.api import AuditIndex

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    ws = Workspace.init(tmp_path, PASSPHRASE)
    attestation = "sha256:" + "c" * 64
    monkeypatch.setenv("SECURENB_ACTOR", "alice")
    ws.audit("model.sign", "sha256:" + "a" * 64, {"path": "m.bin", "attestation": attestation,
                                                  "kernel": "0d2f36c7-aaaa"})
    monkeypatch.setenv("SECURENB_ACTOR", "mallory")
    ws.audit("model.sign", "sha256:" + "a" * 64, {"path": "m.bin", "attestation": attestation})
    found = AuditIndex().signers(ws, [attestation, "sha256:" + "d" * 64])
    assert found == {attestation: ("alice", "a kernel of the Jupyter server (0d2f36c7)")}


def _trained_in(ws: Workspace, model: Path, env_digest: str) -> None:
    """``model`` indexed, with run provenance naming the Python environment it was trained in."""
    from securenb.core.attest import Dependency, RunProvenance, Subject

    artifact = ws.record_artifact(model)
    prov = RunProvenance("secure-train", "r-" + model.stem, "2026-01-01T00:00:00Z",
                         "2026-01-01T00:01:00Z", {"cell": {"sha256": "0" * 64}},
                         {"sandbox": {"backend": "bwrap", "unsafe": False, "network": "none"}},
                         [Dependency("securenb:cell", "0" * 64, "cell"),
                          Dependency("python-env:/venv?packages=1", env_digest, "environment")],
                         "bwrap")
    ws.attest(prov.statement([Subject(artifact.path, artifact.digest)]))


async def test_vulnerability_checks_fill_the_badge_and_the_detail(
        jp_fetch: Fetch, project: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A vulnerability check recorded on the environment a model was trained in (as the gate
    reads it) shows on the model's badge and detail: ``found`` with the count, the worst
    severity and the advisories; a clean environment says ``none``; a model nobody checked
    stays ``not_checked``."""
    from securenb.vulns import check, from_file, record

    export = Path(__file__).parent / "osv_export"
    monkeypatch.setenv("SECURENB_KEY_PASSPHRASE", PASSPHRASE)  # the CLI's, as `securenb vulns`
    ws = Workspace(project)
    (tmp_path / "bad").mkdir()
    (tmp_path / "good").mkdir()
    (tmp_path / "bad" / "requirements.txt").write_text("werkzeug==3.0.2\nrequests==2.30.0\n")
    (tmp_path / "good" / "requirements.txt").write_text("requests==2.31.0\n")
    bad = from_file(tmp_path / "bad" / "requirements.txt")
    good = from_file(tmp_path / "good" / "requirements.txt")
    (project / "models" / "vulnerable.bin").write_bytes(b"vulnerable model")
    (project / "models" / "clean.bin").write_bytes(b"clean model")
    _trained_in(ws, project / "models" / "vulnerable.bin", bad.digest)
    _trained_in(ws, project / "models" / "clean.bin", good.digest)

    status, page = await call(jp_fetch, "viewer", "GET", "securenb/api/artifacts")
    assert status == 200
    for path in ("models/vulnerable.bin", "models/clean.bin", "models/m.bin"):
        assert _row(page, path)["badges"]["vulnerabilities"]["state"] == "not_checked", path

    report = check(bad, export)
    record(ws, report)
    record(ws, check(good, export))
    status, page = await call(jp_fetch, "viewer", "GET", "securenb/api/artifacts")
    conforms(page, "ArtifactPage")
    badge = _row(page, "models/vulnerable.bin")["badges"]["vulnerabilities"]
    worst = max((f.severity for f in report.findings), key=("low", "medium", "high",
                                                             "critical").index)
    assert badge == {"state": "found", "count": len(report.findings), "max_severity": worst}
    assert badge["count"] == 2
    assert _row(page, "models/clean.bin")["badges"]["vulnerabilities"] == {
        "state": "none", "count": 0, "max_severity": None}
    assert _row(page, "models/m.bin")["badges"]["vulnerabilities"]["state"] == "not_checked"

    status, detail = await call(jp_fetch, "viewer", "GET", "securenb/api/artifacts/by-path",
                                path="models/vulnerable.bin")
    assert status == 200
    conforms(detail, "ArtifactDetail")
    assert detail["badges"]["vulnerabilities"] == badge
    items = {v["id"]: v for v in detail["vulnerabilities"]["items"]}
    assert set(items) == {"GHSA-2g68-c3qc-8985", "GHSA-j8r2-6x86-q33q"}
    assert items["GHSA-j8r2-6x86-q33q"]["package"] == "requests"
    assert items["GHSA-j8r2-6x86-q33q"]["version"] == "2.30.0"
    assert items["GHSA-j8r2-6x86-q33q"]["severity"] == "medium"
    assert items["GHSA-j8r2-6x86-q33q"]["fixed_in"] == ["2.31.0"]
    assert detail["vulnerabilities"]["unchecked"] == 0
    status, detail = await call(jp_fetch, "viewer", "GET", "securenb/api/artifacts/by-path",
                                path="models/m.bin")
    assert detail["vulnerabilities"] is None
    assert detail["badges"]["vulnerabilities"]["state"] == "not_checked"


async def test_a_check_on_the_model_itself_counts_and_an_incomplete_one_proves_nothing(
        jp_fetch: Fetch, project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A check recorded on the model's own digest applies to it; one that could not answer
    for some package and found nothing stays ``not_checked`` (never ``none``), and the
    detail still shows it, with how many packages went unchecked."""
    from securenb.vulns import VulnReport, record

    monkeypatch.setenv("SECURENB_KEY_PASSPHRASE", PASSPHRASE)
    ws = Workspace(project)
    status, detail = await call(jp_fetch, "viewer", "GET", "securenb/api/artifacts/by-path",
                                path="models/m.bin")
    digest = detail["digest"].removeprefix("sha256:")
    record(ws, VulnReport("models/m.bin", digest, 1, "PyPI", (),
                          (("torch", "2.0.0", "no answer from the database"),)))
    status, detail = await call(jp_fetch, "viewer", "GET", "securenb/api/artifacts/by-path",
                                path="models/m.bin")
    conforms(detail, "ArtifactDetail")
    assert detail["badges"]["vulnerabilities"] == {
        "state": "not_checked", "count": 0, "max_severity": None}
    assert detail["vulnerabilities"]["unchecked"] == 1 and detail["vulnerabilities"]["items"] == []
    record(ws, VulnReport("models/m.bin", digest, 1, "PyPI", ()))
    status, page = await call(jp_fetch, "viewer", "GET", "securenb/api/artifacts")
    assert status == 200
    assert _row(page, "models/m.bin")["badges"]["vulnerabilities"]["state"] == "none"
