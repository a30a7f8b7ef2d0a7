"""A stand-in for the securenb REST API (API.md) that the galata UI tests of the sidebar use.

It serves the documented shapes from data the test controls (``POST /securenb-fixture/state``),
checks a model's digest against the file on disk when asked to verify (so tampering a file
really turns its badge to TAMPERED), and emits real ``https://securenb.dev/events/...`` events
on the server's event bus. It is loaded *instead of* ``securenb.server`` and only by the UI tests.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from jupyter_server.base.handlers import APIHandler
from jupyter_server.serverapp import ServerApp
from tornado import web

FINGERPRINT = "3f2a9c0e" * 8  # a key id as the server sends it (sha256 of the public key)
EVENT_NAMES = ("artifact-recorded", "signed", "scanned", "run-finished")
EVENT_BASE = "https://securenb.dev/events/"
ACTIONS = (
    "read",
    "sign",
    "verify",
    "scan",
    "gate",
    "bias",
    "decrypt",
    "promote",
    "rollback",
    "audit",
)


def _digest(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def _badges(**over: Any) -> dict[str, Any]:
    b: dict[str, Any] = {
        "signature": {"state": "unsigned", "signer": None, "signed_at": None},
        "scan": {"state": "not_scanned", "findings": 0},
        "fairness": {"state": "not_checked"},
        "vulnerabilities": {"state": "not_checked", "count": 0, "max_severity": None},
        "gate": {"state": "not_run"},
    }
    b.update(over)
    return b


class State:
    """What the fixture API answers; the test sets the mode and the role."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.mode = "normal"
        self.role = "owner"
        self.artifacts: dict[str, dict[str, Any]] = {}
        self.audit: list[dict[str, Any]] = []

    def reset(self, mode: str, role: str, count: int) -> None:
        self.mode, self.role = mode, role
        self.artifacts, self.audit = {}, []
        if mode == "big":
            for i in range(count):
                d = "sha256:" + hashlib.sha256(str(i).encode()).hexdigest()
                self.artifacts[d] = self._summary(
                    d,
                    f"outputs/model-{i:04d}.pkl",
                    "model",
                    _badges(
                        signature={
                            "state": "signed" if i % 3 else "unsigned",
                            "signer": "alice",
                            "signed_at": None,
                        },
                        scan={
                            "state": ("safe", "unsafe", "unknown", "not_scanned")[i % 4],
                            "findings": i % 4,
                        },
                    ),
                )
        elif mode == "normal":
            self._seed()

    def _summary(self, digest: str, path: str, kind: str, badges: dict[str, Any]) -> dict[str, Any]:
        return {
            "digest": digest,
            "path": path,
            "name": path.rsplit("/", 1)[-1],
            "kind": kind,
            "notebook": "pipeline.ipynb",
            "run_id": "run-1",
            "recorded_at": "2026-12-05T10:00:00Z",
            "badges": badges,
        }

    def _seed(self) -> None:
        model = self.root / "outputs" / "model.pkl"
        data = self.root / "data" / "train.csv"
        self.model_digest = _digest(model)
        self.data_digest = _digest(data)
        self.artifacts[self.data_digest] = self._summary(
            self.data_digest, "data/train.csv", "dataset", _badges()
        )
        self.artifacts[self.model_digest] = self._summary(
            self.model_digest,
            "outputs/model.pkl",
            "model",
            _badges(
                signature={
                    "state": "signed",
                    "signer": "alice@example.org",
                    "identity": "alice@example.org",
                    "identity_via": "Sigstore certificate",
                    "key_id": FINGERPRINT,
                    "key_name": None,
                    "signed_at": "2026-12-05T10:02:00Z",
                },
                scan={"state": "safe", "findings": 0},
                fairness={"state": "fail"},
                vulnerabilities={"state": "found", "count": 2, "max_severity": "high"},
                gate={"state": "fail"},
            ),
        )
        bad = "sha256:" + "e" * 64
        self.artifacts[bad] = self._summary(
            bad, "outputs/evil.pkl", "model", _badges(scan={"state": "unsafe", "findings": 3})
        )
        self.audit = [
            {
                "index": 0,
                "time": "2026-12-05T10:00:00Z",
                "actor": "alice",
                "action": "run.finished",
                "subject": "run-1",
                "details": {},
                "inclusion": "verified",
            },
            {
                "index": 1,
                "time": "2026-12-05T10:02:00Z",
                "actor": "alice",
                "action": "model.signed",
                "subject": self.model_digest,
                "details": {},
                "inclusion": "verified",
            },
        ]

    def detail(self, digest: str) -> dict[str, Any]:
        a = self.artifacts[digest]
        d: dict[str, Any] = dict(
            a,
            provenance={"nodes": [], "edges": []},
            scan=None,
            fairness=None,
            signature=None,
            vulnerabilities=None,
            gate=None,
            audit=[],
        )
        if self.mode != "normal" or digest != self.model_digest:
            return d
        sig = a["badges"]["signature"]
        d["provenance"] = {
            "nodes": [
                {"id": "d1", "kind": "dataset", "label": "train.csv", "digest": self.data_digest},
                {"id": "r1", "kind": "run", "label": "run-1 (bwrap)", "digest": None},
                {"id": "m1", "kind": "model", "label": "model.pkl", "digest": digest},
                {"id": "s1", "kind": "signature", "label": "signed: alice", "digest": None},
                {"id": "c1", "kind": "scan", "label": "scan: SAFE", "digest": None},
                {"id": "f1", "kind": "fairness", "label": "fairness: FAIL", "digest": None},
                {"id": "g1", "kind": "gate", "label": "gate: FAIL", "digest": None},
            ],
            "edges": [
                {"source": "d1", "target": "r1", "label": "input"},
                {"source": "r1", "target": "m1", "label": "output"},
                {"source": "m1", "target": "s1", "label": "signed"},
                {"source": "m1", "target": "c1", "label": "scanned"},
                {"source": "m1", "target": "f1", "label": "checked"},
                {"source": "m1", "target": "g1", "label": "gated"},
            ],
        }
        d["scan"] = {"verdict": "SAFE", "findings": []}
        d["vulnerabilities"] = {
            "checked_at": "2026-12-05T10:03:00Z",
            "source": "the run's environment",
            "database": "PyPI advisory database",
            "unchecked": 0,
            "items": [
                {"id": "PYSEC-2026-0001", "package": "pillow", "version": "10.0.0",
                 "severity": "high", "fixed_in": ["10.3.0"], "summary": "buffer overflow"},
                {"id": "GHSA-aaaa-bbbb-cccc", "package": "requests", "version": "2.30.0",
                 "severity": "medium", "fixed_in": [], "summary": "proxy credentials leak"},
            ],
        }
        d["fairness"] = {
            "metrics": [
                {
                    "name": "selection_rate",
                    "overall": 0.42,
                    "groups": {"female": 0.31, "male": 0.53, "other": 0.40},
                    "threshold": None,
                    "passed": None,
                }
            ],
            "disparities": [
                {
                    "name": "demographic_parity_ratio",
                    "value": 0.58,
                    "threshold": 0.8,
                    "passed": False,
                    "reason": None,
                }
            ],
        }
        d["fairness"]["metrics"].append(
            {
                "name": "true_positive_rate",
                "overall": 0.7,
                "groups": {"female": 0.61, "male": 0.78, "other": 0.7},
                "threshold": 0.65,
                "passed": False,
            }
        )
        if sig["state"] != "unsigned":
            d["signature"] = {
                "signer": "alice@example.org",
                "key_id": FINGERPRINT,
                "key_name": None,
                "identity": "Alice Example",
                "identity_via": "Sigstore certificate",
                "signed_at": "2026-12-05T10:02:00Z",
                "verified": sig["state"] == "signed",
                "reason": None if sig["state"] == "signed" else "digest does not match the file",
            }
        d["gate"] = {
            "verdict": "fail",
            "rules": [
                {"rule": "signed", "outcome": "pass", "detail": "release key"},
                {"rule": "scan safe", "outcome": "pass", "detail": "SAFE"},
                {
                    "rule": "fairness",
                    "outcome": "fail",
                    "detail": "demographic_parity_ratio 0.58 < 0.8",
                },
            ],
        }
        d["audit"] = self.audit
        return d


def _state(handler: web.RequestHandler) -> State:
    state: State = handler.settings["securenb_fixture"]
    return state


class _Base(APIHandler):
    def fail(self, status: int, reason: str) -> None:
        self.set_status(status)
        self.finish(json.dumps({"error": reason, "status": status}))

    def check_mode(self) -> bool:
        if _state(self).mode == "error":
            self.fail(503, "audit store unavailable: fixture error mode")
            return False
        return True


class MeHandler(_Base):
    @web.authenticated
    def get(self) -> None:
        st = _state(self)
        viewer = st.role == "viewer"
        actions = {
            a: {
                "allowed": not viewer or a in ("read", "verify", "audit"),
                "reason": "role viewer may not " + a
                if viewer and a not in ("read", "verify", "audit")
                else None,
            }
            for a in ACTIONS
        }
        self.finish(
            json.dumps(
                {"user": "alice", "display_name": "Alice", "roles": [st.role], "actions": actions}
            )
        )


class ArtifactsHandler(_Base):
    @web.authenticated
    def get(self) -> None:
        if not self.check_mode():
            return
        items = list(_state(self).artifacts.values())
        limit, offset = (
            int(self.get_argument("limit", "100")),
            int(self.get_argument("offset", "0")),
        )
        self.finish(
            json.dumps(
                {
                    "items": items[offset : offset + limit],
                    "total": len(items),
                    "limit": limit,
                    "offset": offset,
                }
            )
        )


class ArtifactHandler(_Base):
    @web.authenticated
    def get(self, digest: str) -> None:
        st = _state(self)
        if digest == "by-path":
            path = self.get_argument("path")
            found = [d for d, a in st.artifacts.items() if a["path"] == path]
            if not found:
                self.fail(404, f"no artifact recorded at {path}")
                return
            digest = found[0]
        if digest not in st.artifacts:
            self.fail(404, f"unknown artifact {digest}")
            return
        self.finish(json.dumps(st.detail(digest)))


class VerifyHandler(_Base):
    @web.authenticated
    def post(self) -> None:
        st = _state(self)
        path = json.loads(self.request.body)["path"]
        found = [a for a in st.artifacts.values() if a["path"] == path]
        if not found:
            self.fail(404, f"no signature for {path}")
            return
        a = found[0]
        ok = _digest(st.root / path) == a["digest"]
        a["badges"]["signature"]["state"] = "signed" if ok else "tampered"
        self.settings["serverapp"].event_logger.emit(
            schema_id=EVENT_BASE + "signed/v1",
            data={"digest": a["digest"], "path": path, "notebook": a["notebook"], "actor": "alice"},
        )
        self.finish(
            json.dumps(
                {
                    "path": path,
                    "verified": ok,
                    "reason": None if ok else "digest does not match the signed digest",
                }
            )
        )


class DenyHandler(_Base):
    @web.authenticated
    def post(self) -> None:
        if _state(self).role == "viewer":
            self.fail(403, "role viewer may not do this")
            return
        self.finish(
            json.dumps(
                {"path": json.loads(self.request.body)["path"], "verdict": "SAFE", "findings": []}
            )
        )


class AuditHandler(_Base):
    @web.authenticated
    def get(self) -> None:
        st = _state(self)
        self.finish(json.dumps({"items": st.audit, "size": len(st.audit)}))


class ControlHandler(_Base):
    """Test control: set the fixture's mode/role, or emit an event."""

    @web.authenticated
    def post(self, what: str) -> None:
        st = _state(self)
        body = json.loads(self.request.body or b"{}")
        if what == "state":
            st.reset(
                body.get("mode", "normal"), body.get("role", "owner"), int(body.get("count", 1000))
            )
        elif what == "event":
            self.settings["serverapp"].event_logger.emit(
                schema_id=EVENT_BASE + body.get("name", "artifact-recorded") + "/v1",
                data={
                    "digest": body.get("digest"),
                    "path": body.get("path"),
                    "notebook": None,
                    "actor": "alice",
                },
            )
        elif what == "add":
            d = "sha256:" + hashlib.sha256(body["path"].encode()).hexdigest()
            st.artifacts[d] = st._summary(
                d,
                body["path"],
                "model",
                _badges(signature={"state": "signed", "signer": "bob", "signed_at": None}),
            )
        self.finish("{}")


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "ui_fixture_api"}]


def _load_jupyter_server_extension(serverapp: ServerApp) -> None:
    root = Path(serverapp.root_dir)
    state = State(root)
    state.reset("normal", "owner", 0)
    for name in EVENT_NAMES:
        serverapp.event_logger.register_event_schema(
            {
                "$id": EVENT_BASE + name + "/v1",
                "version": "1",
                "title": name,
                "type": "object",
                "properties": {
                    k: {"type": ["string", "null"]} for k in ("digest", "path", "notebook", "actor")
                },
            }
        )
    base = serverapp.web_app.settings["base_url"].rstrip("/")
    api = base + "/securenb/api/"
    serverapp.web_app.settings["securenb_fixture"] = state
    serverapp.web_app.add_handlers(
        ".*$",
        [
            (api + "me", MeHandler),
            (api + "artifacts", ArtifactsHandler),
            (api + r"artifacts/([^/]+)", ArtifactHandler),
            (api + "verify", VerifyHandler),
            (api + "(?:sign|scan|gate)", DenyHandler),
            (api + "audit/entries", AuditHandler),
            (base + r"/securenb-fixture/(state|event|add)", ControlHandler),
        ],
    )
