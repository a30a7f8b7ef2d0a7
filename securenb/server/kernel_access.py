"""RBAC on the kernel socket: a kernel may do only what every user who opened it may.

Anyone who can run code in a kernel can send its requests, so a request
counts as made by each user the authorizer saw open the kernel's channels
(``SecurenbAuthorizer.kernel_users``): each must hold ``securenb:<action>``
(sign, verify, scan, bias, gate, decrypt), and a kernel no user has opened through
the server gets nothing. Without the authorizer, jupyter_server lets every
authenticated user (the server's owner) do everything, and so does this.
Every refusal is an ``access.deny`` audit entry naming the user, the action,
the resource and the kernel.
"""

from __future__ import annotations

import getpass
import logging
from typing import Any

from securenb.data.errors import AccessDenied
from securenb.errors import SecurenbError
from securenb.server.authorizer import SecurenbAuthorizer
from securenb.server.signer import SignerService

_DOING = {"decrypt": "decrypt datasets", "scan": "scan models", "bias": "record bias checks",
          "gate": "evaluate the gate"}


class Refused(AccessDenied):
    """A request refused to ``user`` (the name the audit entry gives)."""

    def __init__(self, message: str, user: str) -> None:
        super().__init__(message)
        self.user = user


class KernelAccess:
    """Decides for the users of this server's kernels; records every refusal."""

    def __init__(self, signer: SignerService, authorizer: Any, log: logging.Logger) -> None:
        self.signer, self.log = signer, log
        self.authorizer = authorizer if isinstance(authorizer, SecurenbAuthorizer) else None

    def users(self, kernel: str, what: str) -> list[Any]:
        """The users who opened ``kernel``; none (no RBAC) or Refused if nobody has."""
        if self.authorizer is None:
            return []
        users = list(self.authorizer.kernel_users.get(kernel, {}).values())
        if not users:
            raise Refused(f"{what}: no user of this server has opened kernel {kernel}, so no "
                          "role can be checked", "(none)")
        return users

    def names(self, kernel: str) -> tuple[str, ...]:
        """The names of the users who opened ``kernel`` (none without RBAC)."""
        if self.authorizer is None:
            return ()
        return tuple(self.authorizer.kernel_users.get(kernel, {}))

    def require(self, kernel: str, action: str | None, what: str) -> tuple[str, ...]:
        """The names of the kernel's users if every one may ``securenb:<action>`` (None:
        running the kernel is enough); Refused naming the first who may not."""
        users = self.users(kernel, what)
        for user in users if action is not None else ():
            assert self.authorizer is not None and action is not None
            decision = self.authorizer.decision(user, action, "securenb")
            if not decision.allowed:
                raise Refused(f"{what}: user {user.username!r} may not "
                              f"{_DOING.get(action, action)} ({decision.reason})", user.username)
        return tuple(u.username for u in users)

    @staticmethod
    def who(users: tuple[str, ...]) -> str:
        """The user name a refusal gives: the kernel's users, else the server's owner."""
        return ", ".join(users) or f"{getpass.getuser()} (server owner: no RBAC)"

    async def deny(self, kernel: str, action: str, resource: str, exc: Refused,
                   **extra: str) -> None:
        """The refusal as an audit entry (the server log only if the log cannot be written)."""
        details = {"user": exc.user, "action": action, "resource": resource, "reason": str(exc),
                   "kernel": kernel, **extra}
        self.log.warning("securenb: refused a kernel's request: %s", exc)
        try:
            await self.signer.call(lambda ws: ws.audit("access.deny", f"securenb:{action}",
                                                       details))
        except SecurenbError as err:
            self.log.warning("securenb: denial not audited: %s", err)
