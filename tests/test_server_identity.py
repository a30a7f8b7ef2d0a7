"""Signing over REST under Jupyter's token auth records who acted, not a random id.

jupyter_server mints a new "Anonymous <moon>" user (a uuid4 hex) for every
token-authenticated request; the signature's audit entry and attestation must name
the server's owner, who holds the token, and say how they logged in.
"""

from __future__ import annotations

import getpass
import re

from test_server_signing import Server, server  # noqa: F401 - the real server fixture

from securenb.core.workspace import Workspace


def test_rest_signing_records_the_server_owner(server: Server) -> None:  # noqa: F811
    server.call("POST", "/securenb/api/sign", {"path": "models/m"})
    ws = Workspace(server.root)
    (entry,) = [r.entry for r in ws.audit_log.tail(20) if r.entry.action == "model.sign"][-1:]
    details = dict(entry.details)
    assert details["user"] == getpass.getuser(), details
    assert not re.fullmatch(r"[0-9a-f]{32}", details["user"])
    assert details["auth"] == "jupyter token (server owner)"
