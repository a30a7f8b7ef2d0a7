"""RBAC for a Jupyter server.

Enable with ``c.ServerApp.authorizer_class = "securenb.server.authorizer.SecurenbAuthorizer"``.

Users and groups map to roles in config (``user_roles``, ``group_roles``,
``default_roles``) and in the policy (``[tool.securenb.roles]``: role -> user
names and ``group:NAME``); under JupyterHub (``hub_scopes = True``) the custom
scopes ``custom:securenb:<role>`` granted by Hub roles add roles too. What a
role may do is securenb.server.rbac (defaults, replaced or extended by the
policy's ``[tool.securenb.permissions]``). Every denial is an audit entry
naming the user, action and resource. The users allowed to open a kernel's
channels (the websocket through which JupyterLab runs code) are remembered per
kernel: dataset keys are released to a kernel only for roles all of them hold
(securenb.server.datasets).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

from jupyter_server.auth.authorizer import Authorizer
from jupyter_server.auth.identity import User
from tornado.web import RequestHandler
from traitlets import Bool, Dict, List, Unicode

from securenb.core.workspace import Workspace
from securenb.errors import SecurenbError
from securenb.server.rbac import Decision, decide, role_table

GROUP_PREFIX = "group:"
HUB_SCOPE_PREFIX = "custom:securenb:"
_LOG = logging.getLogger("securenb.server")


class SecurenbAuthorizer(Authorizer):
    """Deny unless one of the user's roles grants ``resource:action``; audit each denial."""

    user_roles = Dict(key_trait=Unicode(), value_trait=List(Unicode()), default_value={},
                      config=True, help="username -> roles, e.g. {'alice': ['signer']}")
    group_roles = Dict(key_trait=Unicode(), value_trait=List(Unicode()), default_value={},
                       config=True, help="group -> roles (JupyterHub groups)")
    default_roles = List(Unicode(), default_value=[], config=True,
                         help="roles of every authenticated user (none by default)")
    hub_scopes = Bool(False, config=True,
                      help="also read roles from the Hub scopes custom:securenb:<role>")

    _policy_roles: tuple[dict[str, tuple[str, ...]], dict[str, tuple[str, ...]]] | None = None

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.kernel_users: dict[str, dict[str, User]] = {}  # kernel id -> name -> user

    def roles_of(self, user: User) -> list[str]:
        """The user's roles: configured for the name and groups, the policy's members,
        the Hub scopes."""
        hub: dict[str, Any] = getattr(user, "hub_user", None) or {}
        groups = [*getattr(user, "groups", ()), *hub.get("groups", ())]
        roles = [*self.default_roles, *self.user_roles.get(user.username, [])]
        for group in groups:
            roles += self.group_roles.get(group, [])
        roles += [role for role, names in self._policy()[0].items()
                  if any(_names_member(name, user.username, groups) for name in names)]
        if self.hub_scopes:
            roles += [s[len(HUB_SCOPE_PREFIX):] for s in hub.get("scopes", ())
                      if isinstance(s, str) and s.startswith(HUB_SCOPE_PREFIX)]
        return list(dict.fromkeys(roles))

    def _policy(self) -> tuple[dict[str, tuple[str, ...]], dict[str, tuple[str, ...]]]:
        """The policy's role members and role permissions (read once)."""
        if self._policy_roles is None:
            members: dict[str, tuple[str, ...]] = {}
            permissions: dict[str, tuple[str, ...]] = {}
            root = getattr(self.parent, "root_dir", None)
            if root:
                try:
                    policy = Workspace.find(Path(root)).policy
                    members, permissions = dict(policy.roles), dict(policy.permissions)
                except SecurenbError as exc:
                    self.log.info("securenb: default roles (%s)", exc)
            self._policy_roles = (members, permissions)
        return self._policy_roles

    def table(self) -> dict[str, tuple[str, ...]]:
        """Role -> permissions: the defaults, with the policy's ``permissions`` applied."""
        return role_table(self._policy()[1])

    def decision(self, user: User, action: str, resource: str) -> Decision:
        return decide(self.table(), self.roles_of(user), resource, action)

    def is_authorized(self, handler: RequestHandler, user: User, action: str,
                      resource: str) -> Awaitable[bool]:
        return self._check(handler, user, action, resource)

    async def _check(self, handler: RequestHandler, user: User, action: str,
                     resource: str) -> bool:
        decision = self.decision(user, action, resource)
        if not decision.allowed:
            await audit_denial(handler, user, action, resource, decision.reason or "")
        elif resource == "kernels" and action == "execute":
            kernel_id = getattr(handler, "kernel_id", None)  # the kernel websocket's
            if isinstance(kernel_id, str):
                self.kernel_users.setdefault(kernel_id, {})[user.username] = user
        return decision.allowed


async def audit_denial(handler: RequestHandler, user: User, action: str, resource: str,
                       reason: str) -> None:
    """Record a refused request in the audit log (or the server log without a workspace)."""
    signer = handler.settings.get("securenb_signer")
    details = {"user": user.username, "action": action, "resource": resource,
               "reason": reason, "method": handler.request.method or "",
               "uri": handler.request.path}
    if signer is not None:
        try:
            await signer.call(lambda ws: ws.audit("access.deny", f"{resource}:{action}", details))
            return
        except SecurenbError as exc:
            _LOG.warning("securenb: denial not audited: %s", exc)
    _LOG.warning("securenb: denied %s", details)


def _names_member(name: str, username: str, groups: list[str]) -> bool:
    """Whether a policy member entry (a user name, or ``group:NAME``) names this user.

    Names and groups are compared apart, so a user called ``group:x`` is not in group x."""
    if name.startswith(GROUP_PREFIX):
        return name[len(GROUP_PREFIX):] in groups
    return name == username
