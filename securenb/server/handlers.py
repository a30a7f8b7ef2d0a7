"""REST handlers of the securenb extension (Jupyter's authentication and authorization).

``POST /securenb/api/sign``   body: a SignRequest (``path`` relative to the server root)
``POST /securenb/api/verify`` body: ``{"path": ..., "signature": null}``

Both answer the result as JSON; a refused request answers ``{"message": ...}``
with status 400. The ``securenb`` auth resource lets an Authorizer (RBAC, a
later issue) decide who may sign (``write``).
"""

from __future__ import annotations

import getpass
import json
import re
from typing import Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from tornado import web

from securenb.errors import SecurenbError
from securenb.server.signer import SignerService
from securenb.signing.service import SignRequest

AUTH_RESOURCE = "securenb"
_ANONYMOUS_ID = re.compile(r"[0-9a-f]{32}")
"""jupyter_server's IdentityProvider.generate_anonymous_user: a uuid4 hex per request."""


class _SignerHandler(APIHandler):
    auth_resource = AUTH_RESOURCE

    @property
    def signer(self) -> SignerService:
        signer: SignerService = self.settings["securenb_signer"]
        return signer

    def requester(self) -> dict[str, str]:
        """Who asked, as the records name them.

        Jupyter's shared token (or password) identifies no person: every such request
        gets a fresh random "Anonymous <moon>" user. Whoever holds the token acts as
        the server's owner, so that is who is recorded, with how they logged in.
        """
        user = self.current_user
        username = str(getattr(user, "username", user))
        if _ANONYMOUS_ID.fullmatch(username) and \
                str(getattr(user, "name", "")).startswith("Anonymous "):
            return {"user": getpass.getuser(), "auth": "jupyter token (server owner)"}
        return {"user": username, "auth": type(self.identity_provider).__name__}

    def body(self) -> dict[str, Any]:
        data = self.get_json_body()
        if not isinstance(data, dict):
            raise web.HTTPError(400, "expected a JSON object")
        return data


class SignHandler(_SignerHandler):
    @web.authenticated
    @authorized
    async def post(self) -> None:
        try:
            result = await self.signer.sign(SignRequest.from_json(self.body()), self.requester())
        except SecurenbError as exc:
            raise web.HTTPError(400, str(exc)) from None
        self.finish(json.dumps(result))


class VerifyHandler(_SignerHandler):
    @web.authenticated
    @authorized
    async def post(self) -> None:
        data = self.body()
        if not isinstance(data.get("path"), str):
            raise web.HTTPError(400, "'path' (a string) is required")
        try:
            result = await self.signer.verify(data["path"], data.get("signature"),
                                              self.requester())
        except SecurenbError as exc:
            raise web.HTTPError(400, str(exc)) from None
        self.finish(json.dumps(result))


def handlers() -> list[tuple[str, type[APIHandler]]]:
    return [(r"/securenb/api/sign", SignHandler), (r"/securenb/api/verify", VerifyHandler)]
