"""Red team: RBAC of the securenb server, crossed through the kernel signer socket.

A "scientist" may run kernels but not sign (securenb.server.rbac: signing is the
"signer" role's). The REST API refuses the scientist's sign request; the same
scientist's kernel asks the kernel socket, which checks only that the request
comes from a kernel of this server, never whose kernel it is or what that user
may do.

Real jupyter server with SecurenbAuthorizer, a real kernel it started.
"""

from __future__ import annotations

import urllib.error
from collections.abc import Iterator
from pathlib import Path

import pytest
from jupyter_server.auth.identity import User
from redteam_support import configured_server
from test_server_signing import PASSPHRASE, Server, _run, kernel_client
from traitlets import Unicode
from traitlets.config import Configurable

from securenb.core.workspace import Workspace
from securenb.server.authorizer import SecurenbAuthorizer


@pytest.fixture(scope="module")
def scientist_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Every user of this server (the token's included) is a scientist, nothing more."""
    config = {"ServerApp": {"authorizer_class": "securenb.server.authorizer.SecurenbAuthorizer"},
              "SecurenbAuthorizer": {"default_roles": ["scientist"]}}
    with configured_server(tmp_path_factory.mktemp("rbac"), config) as srv:
        yield srv


def _sign_over_rest(server: Server) -> int:
    try:
        server.call("POST", "/securenb/api/sign", {"path": "models/m"})
    except urllib.error.HTTPError as exc:
        return exc.code
    return 200


def test_a_scientist_cannot_sign_from_a_kernel(scientist_server: Server) -> None:
    assert _sign_over_rest(scientist_server) == 403  # the REST API holds
    root = scientist_server.root
    with kernel_client(scientist_server) as (_, client):  # scientists may run kernels
        out = _run(client, "import os\n"
                           "from securenb.kernel.sign_magics import register\n"
                           "register(get_ipython())\n"
                           f"os.chdir({str(root)!r})\n"
                           "%sign_model models/m\n")
    assert not (root / "models" / "m.sig").exists(), out
    assert out[-1] == ("reply", {"status": "error"}), out



class _Server(Configurable):
    """What the authorizer reads from its parent: the server's root folder."""

    root_dir = Unicode()


def test_a_user_named_like_a_group_gets_no_group_roles(tmp_path: Path) -> None:
    Workspace.init(tmp_path, PASSPHRASE)
    (tmp_path / "securenb.toml").write_text('[roles]\nsigner = ["alice", "group:release"]\n')
    authorizer = SecurenbAuthorizer(parent=_Server(root_dir=str(tmp_path)))
    member = User(username="bob")
    member.groups = ["release"]  # type: ignore[attr-defined]  # as JupyterHub's users carry
    assert "signer" in authorizer.roles_of(member)  # the policy works for a real member
    impostor = User(username="group:release")
    assert authorizer.roles_of(impostor) == []
