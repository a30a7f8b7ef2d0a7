"""The red team's servers: a real securenb jupyter server with a jupyter config of the test's."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from test_server_signing import PASSPHRASE, Server, running_server

from securenb.core.workspace import Workspace


@contextlib.contextmanager
def configured_server(base: Path, config: dict[str, Any]) -> Iterator[Server]:
    """A fresh workspace (a model folder ``models/m``) served with ``config`` applied."""
    folders = {name: base / name for name in ("project", "runtime", "config", "data", "ipython")}
    (folders["project"] / "models" / "m").mkdir(parents=True)
    (folders["project"] / "models" / "m" / "weights.bin").write_bytes(b"w" * 1000)
    folders["config"].mkdir()
    (folders["config"] / "jupyter_server_config.json").write_text(json.dumps(config))
    Workspace.init(folders["project"], PASSPHRASE)
    env = {**os.environ, "SECURENB_KEY_PASSPHRASE": PASSPHRASE,
           **{f"JUPYTER_{k.upper()}_DIR": str(folders[k]) for k in ("runtime", "config", "data")},
           "IPYTHONDIR": str(folders["ipython"])}
    with running_server(folders["project"], folders["runtime"], env,
                        base / "server.log") as srv:
        yield srv
