"""The REST API under ``/securenb/api/`` (contract: securenb/server/openapi.json).

Every handler: Jupyter's authentication (token/cookie, XSRF on unsafe methods),
then one RBAC action on the ``securenb`` resource (a denial is audited by the
authorizer), bodies limited in size, requests limited in rate per requester, paths
confined to the server root (symlinks resolved first), and errors as
``{"error": <one line>, "status": <code>}``, never a traceback.
"""

from __future__ import annotations

import getpass
import importlib
import json
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from jupyter_server.base.handlers import APIHandler
from tornado import web

from securenb.core.audit.log import AuditLog
from securenb.core.workspace import Workspace
from securenb.errors import SecurenbError
from securenb.server.catalog import KINDS, Catalog
from securenb.server.rbac import ACTIONS, RESOURCE, Decision
from securenb.server.signer import SignerService
from securenb.signing.service import SignRequest

OPENAPI = Path(__file__).with_name("openapi.json")
MAX_BODY = 64 * 1024
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_ANONYMOUS_ID = re.compile(r"[0-9a-f]{32}")
"""jupyter_server's IdentityProvider.generate_anonymous_user: a uuid4 hex per request."""


class RateLimiter:
    """A token bucket per requester: ``rate`` requests a second, bursts of ``burst``.

    At most ``max_keys`` buckets are kept, the least recently used dropped first (a
    dropped bucket starts full again, as one idle long enough would be)."""

    def __init__(self, rate: float, burst: int, max_keys: int = 4096) -> None:
        self.rate, self.burst, self.max_keys = rate, burst, max_keys
        self._buckets: dict[str, tuple[float, float]] = {}

    def __len__(self) -> int:
        return len(self._buckets)

    def allow(self, key: str) -> bool:
        now = time.monotonic()
        tokens, last = self._buckets.pop(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        allowed = tokens >= 1
        self._buckets[key] = (tokens - 1 if allowed else tokens, now)  # now the newest
        while len(self._buckets) > self.max_keys:
            del self._buckets[next(iter(self._buckets))]
        return allowed


class Context:
    """What the handlers share: the signer, the catalog, the limits."""

    def __init__(self, signer: SignerService, root: Path, rate: float, burst: int,
                 read_rate: float = 200.0, read_burst: int = 1000) -> None:
        self.signer = signer
        self.root = root
        self.limiter = RateLimiter(rate, burst)
        self.read_limiter = RateLimiter(read_rate, read_burst)
        self.audit_index = AuditIndex()
        self._catalog: Catalog | None = None

    def catalog(self) -> Catalog:
        if self._catalog is None:
            try:
                self._catalog = Catalog(Workspace.find(self.root))
            except SecurenbError as exc:
                raise web.HTTPError(404, f"no securenb workspace under the server root "
                                         f"({exc})") from None
        return self._catalog

    def close(self) -> None:
        if self._catalog is not None:
            self._catalog.close()


class BaseHandler(APIHandler):
    """JSON errors, size limit, one RBAC action per request."""

    action = "read"
    limited = False  # a write: the tighter per-requester rate limit

    @property
    def ctx(self) -> Context:
        ctx: Context = self.settings["securenb_api"]
        return ctx

    async def prepare(self) -> None:  # type: ignore[override]
        await super().prepare()
        length = self.request.headers.get("Content-Length")
        if (length is not None and (not length.isdigit() or int(length) > MAX_BODY)) \
                or len(self.request.body or b"") > MAX_BODY:
            raise web.HTTPError(413, f"request body over {MAX_BODY} bytes")

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        reason = exc.log_message if isinstance(exc, web.HTTPError) and exc.log_message \
            else (self._reason or "error")
        if status_code == 500:
            reason = "internal error (see the server log)"
        self.set_header("Content-Type", "application/json")
        line = " ".join(str(reason).split())
        # "message": what jupyter_server's own API errors carry (older clients read it)
        self.finish(json.dumps({"error": line, "status": status_code, "message": line}))

    def user_name(self) -> str:
        return str(getattr(self.current_user, "username", self.current_user))

    def requester(self) -> dict[str, str]:
        """Who asked, as the records name them.

        Jupyter's shared token (or password) identifies no person: every such request
        gets a fresh random "Anonymous <moon>" user. Whoever holds the token acts as
        the server's owner, so that is who is recorded, with how they logged in.
        """
        user = self.current_user
        username = self.user_name()
        if _ANONYMOUS_ID.fullmatch(username) and \
                str(getattr(user, "name", "")).startswith("Anonymous "):
            return {"user": getpass.getuser(), "auth": "jupyter token (server owner)"}
        return {"user": username, "auth": type(self.identity_provider).__name__}

    async def require(self) -> None:
        """Authenticated, this handler's action allowed, and within the rate limit."""
        if self.current_user is None:
            raise web.HTTPError(403, "not logged in")
        allowed = await _maybe(self.authorizer.is_authorized(self, self.current_user,
                                                             self.action, RESOURCE))
        if not allowed:
            raise web.HTTPError(403, f"{self.user_name()} may not {self.action} "
                                f"({RESOURCE}:{self.action})")
        limiter = self.ctx.limiter if self.limited else self.ctx.read_limiter
        who = self.requester()  # every holder of the token is one requester, the owner
        if not limiter.allow(f"{who['auth']}:{who['user']}"):
            raise web.HTTPError(429, "too many requests; slow down")

    def body(self) -> dict[str, Any]:
        try:
            data = json.loads(self.request.body or b"null")
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise web.HTTPError(400, "the body is not JSON") from None
        if not isinstance(data, dict):
            raise web.HTTPError(400, "expected a JSON object")
        return data

    def arg_int(self, name: str, default: int, low: int, high: int) -> int:
        raw = self.get_query_argument(name, None)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise web.HTTPError(400, f"{name!r} must be an integer") from None
        if not low <= value <= high:
            raise web.HTTPError(400, f"{name!r} must be between {low} and {high}")
        return value

    def page(self) -> tuple[int, int]:
        return self.arg_int("limit", 100, 1, 1000), self.arg_int("offset", 0, 0, 2**62)

    def inside(self, raw: Any) -> Path:
        """A client path, resolved (symlinks too), refused unless inside the root."""
        if not isinstance(raw, str) or not raw or len(raw) > 4096 or "\0" in raw:
            raise web.HTTPError(400, "'path' must be a non-empty string")
        if any(len(part.encode()) > 255 for part in raw.split("/")):
            raise web.HTTPError(400, "'path' has a name longer than 255 bytes")
        try:
            path = self.ctx.signer.inside(raw)
            path.is_file()  # a path the OS refuses (too long, a loop) is refused here
        except (SecurenbError, OSError) as exc:
            raise web.HTTPError(400, refusal(exc)) from None
        return path

    def reply(self, data: Any) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(data))

    async def with_signers(self, badges: list[dict[str, Any]]) -> None:
        """Name the person behind signatures whose record names only a key (audit log)."""
        wanted = [b["attestation"] for b in badges
                  if b.get("identity") is None and b.get("attestation")]
        if not wanted:
            return
        index = self.ctx.audit_index
        found = await self.on_worker(lambda ws: index.signers(ws, wanted))
        for b in badges:
            if b.get("identity") is None and b.get("attestation") in found:
                user, how = found[b["attestation"]]
                b["identity"], b["identity_via"] = user, how
                b["signer"] = user

    async def on_worker(self, fn: Callable[[Workspace], Any]) -> Any:
        try:
            return await self.ctx.signer.call(fn)
        except (SecurenbError, OSError) as exc:
            raise web.HTTPError(400, refusal(exc)) from None


def refusal(exc: Exception) -> str:
    """One line for a refused request: our errors say it all; the OS's, without paths."""
    if isinstance(exc, OSError):
        return f"refused: {exc.strerror or type(exc).__name__}"
    return str(exc)


def _how(details: Mapping[str, Any]) -> str:
    """How a signer reached the keys, from an audit entry's details (one short phrase)."""
    if isinstance(details.get("kernel"), str):
        kernel = details["kernel"]
        return (f"local agent ({kernel})" if kernel.startswith("pid:")
                else f"a kernel of the Jupyter server ({kernel[:8]})")
    if details.get("via") == "server":
        return "the Jupyter server"
    return "the securenb CLI or SDK (audit log)"


async def _maybe(value: Awaitable[bool] | bool) -> bool:
    return await value if not isinstance(value, bool) else value


class MeHandler(BaseHandler):
    @web.authenticated
    async def get(self) -> None:
        user = self.current_user
        decide: Callable[..., Decision] | None = getattr(self.authorizer, "decision", None)
        roles_of = getattr(self.authorizer, "roles_of", None)
        actions = {}
        for action in ACTIONS:
            if decide is not None:
                d = decide(user, action, RESOURCE)
            else:
                ok = await _maybe(self.authorizer.is_authorized(self, user, action, RESOURCE))
                d = Decision(ok, None if ok else "the server's authorizer refuses it")
            actions[action] = {"allowed": d.allowed, "reason": d.reason}
        self.reply({"user": self.user_name(),
                    "display_name": str(getattr(user, "display_name", "") or self.user_name()),
                    "roles": roles_of(user) if roles_of else [], "actions": actions})


class OpenAPIHandler(BaseHandler):
    @web.authenticated
    async def get(self) -> None:
        await self.require()
        self.reply(json.loads(OPENAPI.read_text()))


class ArtifactsHandler(BaseHandler):
    @web.authenticated
    async def get(self) -> None:
        await self.require()
        limit, offset = self.page()
        kind = self.get_query_argument("kind", None) or None
        if kind is not None and kind not in KINDS:
            raise web.HTTPError(400, f"'kind' must be one of {', '.join(KINDS)}")
        q = self.get_query_argument("q", None)
        if q is not None and len(q) > 256:
            raise web.HTTPError(400, "'q' is longer than 256 characters")
        notebook = self.get_query_argument("notebook", None)
        page = self.ctx.catalog().artifacts(notebook=notebook or None, kind=kind, q=q or None,
                                            limit=limit, offset=offset)
        await self.with_signers([a["badges"]["signature"] for a in page["items"]])
        self.reply(page)


class ArtifactHandler(BaseHandler):
    @web.authenticated
    async def get(self, digest: str) -> None:
        await self.require()
        if not _DIGEST.fullmatch(digest):
            raise web.HTTPError(400, "the digest must be sha256:<64 lowercase hex>")
        detail = self.ctx.catalog().by_digest(digest.removeprefix("sha256:"))
        if detail is None:
            raise web.HTTPError(404, f"no artifact {digest} in the workspace")
        await self.with_audit(detail)

    async def with_audit(self, detail: dict[str, Any]) -> None:
        await self.with_signers([b for b in (detail["badges"]["signature"], detail["signature"])
                                 if b is not None])
        trail = self.ctx.audit_index.trail
        detail["audit"] = await self.on_worker(
            lambda ws: trail(ws, detail["digest"], detail["path"], detail["recorded_at"]))
        self.reply(detail)


class ArtifactByPathHandler(ArtifactHandler):
    @web.authenticated
    async def get(self) -> None:
        await self.require()
        path = self.inside(self.get_query_argument("path", ""))
        catalog = self.ctx.catalog()
        detail = catalog.by_path(catalog.ws.relpath(path))
        if detail is None:
            raise web.HTTPError(404, "nothing recorded at this path")
        await self.with_audit(detail)


class AuditIndex:
    """Which audit entries name which subject or path: the log is append-only, so read each
    entry once.

    Used on the signer's worker thread only. Each entry shown is re-proved
    against the signed head (inclusion proof), so the index only saves the scan.
    """

    def __init__(self) -> None:
        self._size = 0
        self._by_subject: dict[str, list[int]] = {}
        self._by_path: dict[str, list[int]] = {}
        self._signed_by: dict[str, tuple[str, str]] = {}  # attestation -> (user, how)
        # index -> (tree size it was proved in, the entry as read then)
        self._proved: dict[int, tuple[int, dict[str, Any]]] = {}

    @staticmethod
    def _prove(log: AuditLog, index: int) -> str:
        try:
            log.inclusion_proof(index)  # checks the path to the signed root and the leaf
        except SecurenbError:
            return "failed"
        return "verified"

    def _catch_up(self, log: AuditLog) -> int:
        """Index the entries appended since the last look; the log's size."""
        size = log.size
        if size < self._size:  # a different (or rebuilt) log: start again
            self._size, self._by_subject, self._by_path, self._proved = 0, {}, {}, {}
            self._signed_by = {}
        for record in log.read(self._size, size):
            entry = record.entry
            self._by_subject.setdefault(entry.subject, []).append(record.index)
            named = entry.details.get("path")
            if isinstance(named, str):
                self._by_path.setdefault(named, []).append(record.index)
            attestation = entry.details.get("attestation")
            if entry.action.endswith(".sign") and isinstance(attestation, str):
                # the entry written with the signature; a later one cannot rename its signer
                self._signed_by.setdefault(attestation, (entry.actor, _how(entry.details)))
        self._size = size
        return size

    def signers(self, ws: Workspace, attestations: list[str]) -> dict[str, tuple[str, str]]:
        """attestation -> (the user the audit log names for that signature, how they signed).

        For signatures whose signed record names no person (the CLI, a kernel, the agent):
        the entry's actor is the OS user (or ``SECURENB_ACTOR``) of the process that signed.
        """
        self._catch_up(ws.audit_log)
        return {a: self._signed_by[a] for a in attestations if a in self._signed_by}

    def trail(self, ws: Workspace, subject: str, path: str | None = None,
              since: str = "") -> list[dict[str, Any]]:
        """The entries about ``subject``, and those naming ``path`` from ``since`` on: a
        verify of a model that changed on disk names the digest the file has now."""
        log = ws.audit_log
        size = self._catch_up(log)

        by_subject = self._by_subject.get(subject, [])
        by_path = self._by_path.get(path, []) if path is not None else []
        out = []
        for index in sorted({*by_subject, *by_path}):
            cached = self._proved.get(index)
            entry = cached[1] if cached else {"index": index, **log.get(index).entry.to_json()}
            if index not in by_subject and entry["time"] < since:
                continue  # the path's earlier content
            if cached and cached[0] == size:
                out.append({**entry, "inclusion": "verified"})
                continue
            # an entry that no longer names what it was indexed under was changed: failed
            about = entry["subject"] == subject or entry["details"].get("path") == path
            inclusion = self._prove(log, index) if about else "failed"
            if inclusion == "verified":
                self._proved[index] = (size, entry)
            out.append({**entry, "inclusion": inclusion})
        return out


class RunsHandler(BaseHandler):
    @web.authenticated
    async def get(self) -> None:
        await self.require()
        limit, offset = self.page()
        notebook = self.get_query_argument("notebook", None) or None
        self.reply(self.ctx.catalog().runs(notebook=notebook, limit=limit, offset=offset))


class RunHandler(BaseHandler):
    @web.authenticated
    async def get(self, run_id: str) -> None:
        await self.require()
        run = self.ctx.catalog().run(run_id)
        if run is None:
            raise web.HTTPError(404, "no such run")
        self.reply(run)


class AuditEntriesHandler(BaseHandler):
    action = "audit"

    @web.authenticated
    async def get(self) -> None:
        await self.require()
        limit, offset = self.page()

        def entries(ws: Workspace) -> dict[str, Any]:
            size = ws.audit_log.size
            records = ws.audit_log.read(min(offset, size), min(offset + limit, size))
            return {"items": [{"index": r.index, **r.entry.to_json()} for r in records],
                    "size": size, "limit": limit, "offset": offset}
        self.reply(await self.on_worker(entries))


class CheckpointHandler(BaseHandler):
    action = "audit"

    @web.authenticated
    async def get(self) -> None:
        await self.require()

        def head(ws: Workspace) -> dict[str, Any]:
            if ws.audit_log.size == 0:
                raise web.HTTPError(404, "the audit log is empty")
            signed = ws.audit_log.head()
            cp = signed.checkpoint
            return {"origin": cp.origin, "size": cp.size, "root_hash": cp.root.hex(),
                    "note": signed.note.to_text(), "key_id": None}
        self.reply(await self.on_worker(head))


class InclusionHandler(BaseHandler):
    action = "audit"

    @web.authenticated
    async def get(self) -> None:
        await self.require()
        index = self.arg_int("index", -1, 0, 2**62)
        if self.get_query_argument("index", None) is None:
            raise web.HTTPError(400, "'index' is required")
        size = self.arg_int("size", 0, 0, 2**62)

        def proof(ws: Workspace) -> dict[str, Any]:
            current = ws.audit_log.size
            if size not in (0, current):
                raise web.HTTPError(400, f"proofs are given for the current tree size {current}")
            if index >= current:
                raise web.HTTPError(400, f"no entry {index} in a log of {current}")
            p = ws.audit_log.inclusion_proof(index)
            return {"index": p.index, "size": p.tree_size, "leaf_hash": p.leaf_hash.hex(),
                    "root_hash": ws.audit_log.head().checkpoint.root.hex(),
                    "path": [h.hex() for h in p.hashes], "verified": True,
                    "checkpoint": p.checkpoint}
        self.reply(await self.on_worker(proof))


class ConsistencyHandler(BaseHandler):
    action = "audit"

    @web.authenticated
    async def get(self) -> None:
        await self.require()
        if self.get_query_argument("old", None) is None:
            raise web.HTTPError(400, "'old' is required")
        old = self.arg_int("old", 1, 1, 2**62)
        new = self.arg_int("new", 0, 0, 2**62)

        def proof(ws: Workspace) -> dict[str, Any]:
            current = ws.audit_log.size
            if new not in (0, current):
                raise web.HTTPError(400, f"proofs are given to the current tree size {current}")
            if old > current:
                raise web.HTTPError(400, f"no tree of size {old} in a log of {current}")
            path = ws.audit_log.consistency_proof(old)
            return {"old": old, "new": current, "old_root": "",
                    "new_root": ws.audit_log.head().checkpoint.root.hex(),
                    "path": [h.hex() for h in path], "verified": False}
        self.reply(await self.on_worker(proof))


class AuditVerifyHandler(BaseHandler):
    action = "audit"
    limited = True

    @web.authenticated
    async def post(self) -> None:
        await self.require()

        def check(ws: Workspace) -> dict[str, Any]:
            from securenb.core.audit.verify import verify_log

            size = ws.audit_log.size
            try:
                verify_log(ws.dir / "audit", ws.public_key())
            except SecurenbError as exc:
                return {"verified": False, "size": size, "reason": " ".join(str(exc).split())}
            return {"verified": True, "size": size, "reason": None}
        self.reply(await self.on_worker(check))


class SignHandler(BaseHandler):
    action = "sign"
    limited = True

    @web.authenticated
    async def post(self) -> None:
        await self.require()
        data = self.body()
        kind = data.pop("kind", None)
        if kind not in (None, "model", "notebook"):
            raise web.HTTPError(400, "'kind' must be 'model' or 'notebook'")
        self.inside(data.get("path"))
        try:
            request = SignRequest.from_json(data)
            result = await self.ctx.signer.sign(request, self.requester())
        except (SecurenbError, OSError) as exc:
            raise web.HTTPError(400, refusal(exc)) from None
        self.reply(result)


class VerifyHandler(BaseHandler):
    action = "verify"
    limited = True

    @web.authenticated
    async def post(self) -> None:
        await self.require()
        data = self.body()
        self.inside(data.get("path"))
        signature = data.get("signature")
        if signature is not None and not isinstance(signature, str):
            raise web.HTTPError(400, "'signature' must be a string")
        try:
            result = await self.ctx.signer.verify(data["path"], signature, self.requester())
        except (SecurenbError, OSError) as exc:
            raise web.HTTPError(400, refusal(exc)) from None
        self.reply(result)


class ScanHandler(BaseHandler):
    action = "scan"
    limited = True

    @web.authenticated
    async def post(self) -> None:
        await self.require()
        path = self.inside(self.body().get("path"))
        if not path.is_file():
            raise web.HTTPError(400, "'path' is not a file")

        def scan(ws: Workspace) -> dict[str, Any]:
            from securenb.scan import scan_path
            from securenb.scan.engine import Digests

            digests: Digests = {}  # of the bytes scanned, which the file may no longer hold
            report = scan_path(path, extra_allowed_globals=list(ws.policy.scan.allow_globals),
                               digests=digests)
            findings = [{"rule": f.rule, "location": ":".join(
                str(x) for x in (f.path, f.member, f.offset) if x is not None),
                "message": f.message, "severity": f.severity.value}
                for f in report.all_findings()]
            scanned = digests.get(str(path))
            return {"path": ws.relpath(path), "verdict": report.verdict.value.lower(),
                    "findings": findings,
                    "digest": f"sha256:{scanned[0]}" if scanned else None}
        self.reply(await self.on_worker(scan))


class GateHandler(BaseHandler):
    action = "gate"
    limited = True

    @web.authenticated
    async def post(self) -> None:
        await self.require()
        data = self.body()
        if isinstance(data.get("digest"), str):
            if not _DIGEST.fullmatch(data["digest"]):
                raise web.HTTPError(400, "'digest' must be sha256:<64 lowercase hex>")
            target: str | Path = data["digest"]
        else:
            target = self.inside(data.get("path"))
        try:  # the validation area's gate; absent from older installs
            evaluate = importlib.import_module("securenb.gate").evaluate
        except ImportError:
            raise web.HTTPError(501, "the gate (securenb.gate) is not installed") from None

        def gate(ws: Workspace) -> dict[str, Any]:
            verdict = evaluate(ws, target)
            return {"verdict": verdict.outcome.lower(), "digest": f"sha256:{verdict.digest}",
                    "rules": [{"rule": r.rule, "outcome": {"pass": "pass", "fail": "fail"}.get(
                        r.status, "missing"), "detail": r.why} for r in verdict.rules]}
        self.reply(await self.on_worker(gate))


def handlers() -> list[tuple[str, type[BaseHandler]]]:
    base = r"/securenb/api"
    return [
        (f"{base}/me", MeHandler), (f"{base}/openapi.json", OpenAPIHandler),
        (f"{base}/artifacts", ArtifactsHandler),
        (f"{base}/artifacts/by-path", ArtifactByPathHandler),
        (f"{base}/artifacts/([^/]+)", ArtifactHandler),
        (f"{base}/runs", RunsHandler), (f"{base}/runs/([^/]+)", RunHandler),
        (f"{base}/audit/entries", AuditEntriesHandler),
        (f"{base}/audit/checkpoint", CheckpointHandler),
        (f"{base}/audit/proofs/inclusion", InclusionHandler),
        (f"{base}/audit/proofs/consistency", ConsistencyHandler),
        (f"{base}/audit/verify", AuditVerifyHandler),
        (f"{base}/sign", SignHandler), (f"{base}/verify", VerifyHandler),
        (f"{base}/scan", ScanHandler), (f"{base}/gate", GateHandler),
    ]
