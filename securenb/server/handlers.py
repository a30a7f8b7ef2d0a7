"""REST handlers of the securenb extension (Jupyter's authentication and authorization).

``POST /securenb/api/sign``   body: a SignRequest (``path`` relative to the server root)
``POST /securenb/api/verify`` body: ``{"path": ..., "signature": null}``

Both answer the result as JSON; a refused request answers ``{"message": ...}``
with status 400. The ``securenb`` auth resource lets an Authorizer (RBAC, a
later issue) decide who may sign (``write``).
"""

from __future__ import annotations

import json
from typing import Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from tornado import web

from securenb.errors import SecurenbError
from securenb.server.signer import SignerService
from securenb.signing.service import SignRequest

AUTH_RESOURCE = "securenb"


class _SignerHandler(APIHandler):
    auth_resource = AUTH_RESOURCE

    @property
    def signer(self) -> SignerService:
        signer: SignerService = self.settings["securenb_signer"]
        return signer

    def requester(self) -> dict[str, str]:
        return {"user": str(getattr(self.current_user, "username", self.current_user))}

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
