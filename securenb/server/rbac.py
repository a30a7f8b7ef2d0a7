"""Roles and what they may do: securenb's actions and Jupyter's own resources.

A permission is ``resource:action`` with shell-style wildcards (``contents:*``,
``*:read``). Our API's resource is ``securenb`` and its actions are ``ACTIONS``;
Jupyter's resources (contents, kernels, terminals, sessions, ...) use its actions
read/write/execute. The policy's ``permissions`` table replaces a default role
or adds one (a bare action name means ``securenb:<action>``). Deny unless a
role allows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase

RESOURCE = "securenb"
ACTIONS = ("read", "sign", "verify", "scan", "gate", "bias", "decrypt", "promote",
           "rollback", "audit")

_VIEWER = ("*:read", "events:execute", "securenb:verify", "securenb:audit")
_WORK = ("contents:*", "kernels:*", "sessions:*", "kernelspecs:*", "nbconvert:*",
         "events:*", "securenb:scan", "securenb:bias", "securenb:gate", "securenb:decrypt")
DEFAULT_ROLES: dict[str, tuple[str, ...]] = {
    "viewer": _VIEWER,
    "scientist": (*_VIEWER, *_WORK),
    "signer": (*_VIEWER, *_WORK, "securenb:sign"),
    "deployer": (*_VIEWER, "events:*", "securenb:gate", "securenb:promote",
                 "securenb:rollback"),
    "admin": ("*:*",),
}


@dataclass(frozen=True)
class Decision:
    """Whether one user may take one action, and why (shown by ``GET me``)."""

    allowed: bool
    reason: str | None


def role_table(policy_roles: Mapping[str, Iterable[str]]) -> dict[str, tuple[str, ...]]:
    """The default roles, with the policy's roles replacing or adding entries."""
    table = dict(DEFAULT_ROLES)
    for name, perms in policy_roles.items():
        table[name] = tuple(p if ":" in p else f"{RESOURCE}:{p}" for p in perms)
    return table


def decide(table: Mapping[str, tuple[str, ...]], roles: Iterable[str], resource: str,
           action: str) -> Decision:
    """Allowed if one of ``roles`` grants ``resource:action``; the reason names it."""
    wanted = f"{resource}:{action}"
    roles = list(roles)
    for role in roles:
        for perm in table.get(role, ()):
            if fnmatchcase(wanted, perm):
                return Decision(True, f"role {role!r} grants {perm!r}")
    if not roles:
        return Decision(False, "no role: ask an admin to map your user or group to a role")
    return Decision(False, f"none of your roles ({', '.join(roles)}) grants {wanted!r}")
