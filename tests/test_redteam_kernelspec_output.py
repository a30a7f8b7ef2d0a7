"""Red team: rich output of a whole-notebook isolated kernel (the securenb-bwrap kernelspec).

Hostile code in an isolated kernel displays ``application/javascript``,
``<script>`` and event-handler HTML, a page payload and a widget comm. Live
kernel output is trusted by JupyterLab, so it would run with the user's rights
(the Jupyter API: files, terminals, i.e. the host). Through a real jupyter
server with the extension, over both websocket protocols, what reaches the
browser must be inert; an ordinary kernel's output must be unchanged.
"""

from __future__ import annotations

import asyncio
import json
import os
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from jupyter_server.services.kernels.connection.base import (
    deserialize_msg_from_ws_v1,
    serialize_msg_to_ws_v1,
)
from test_isolation_kernelspecs import (  # noqa: F401 - fixtures
    bwrap_only,
    jupyter_prefix,
    provisioner_entry_points,
)
from test_server_signing import TOKEN, running_server
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from securenb.cli.kernels_cmd import kernels

V1 = "v1.kernel.websocket.jupyter.org"
HOSTILE = """
from IPython.display import HTML, Javascript, display
import comm
display(Javascript("fetch('/api/terminals', {method: 'POST'})"))
display(HTML('<img src=x onerror="alert(1)"><script>alert(2)</script>'), display_id="d")
get_ipython().payload_manager.write_payload(
    {"source": "page", "data": {"text/html": "<script>alert(3)</script>"}, "start": 0})
comm.create_comm(target_name="jupyter.widget", data={"state": {"value": "<img onerror=x>"}})
kernel = get_ipython().kernel  # a signed message the filter cannot read: dropped, not passed
kernel.session.send_raw(kernel.iopub_socket, [kernel.session.pack(part) for part in (
    kernel.session.msg_header("display_data"), kernel.get_parent(), {}, ["<script>"])])
get_ipython().kernel.help_links = [{"text": "docs", "url": "javascript:alert(6)"},
                                   {"text": "ok", "url": "https://docs.python.org/3/"}]
HTML('<a href="javascript:alert(4)">x</a><b onclick="alert(5)">y</b>')
"""


@pytest.fixture
def server_url(tmp_path: Path, jupyter_prefix: Path,  # noqa: F811
               provisioner_entry_points: None) -> Iterator[str]:  # noqa: F811
    CliRunner().invoke(kernels, ["install", "--prefix", str(jupyter_prefix)])
    root = tmp_path / "project"
    root.mkdir()
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
           "JUPYTER_CONFIG_DIR": str(tmp_path / "config")}
    with running_server(root, tmp_path / "runtime", env, tmp_path / "server.log") as srv:
        yield srv.url


async def _requests(url: str, kernel_id: str, protocol: str | None,
                    code: str) -> list[tuple[str, dict[str, Any]]]:
    """What the browser receives for an execute_request of ``code`` and then a
    kernel_info_request, on one websocket: (msg_type, content) in order."""
    ws_url = url.replace("http", "ws") + f"/api/kernels/{kernel_id}/channels?session_id=" + \
        uuid.uuid4().hex
    request = HTTPRequest(ws_url, headers={"Authorization": f"token {TOKEN}"})
    conn = await websocket_connect(request, subprotocols=[protocol] if protocol else None)
    execute = {"code": code, "silent": False, "store_history": True, "user_expressions": {},
               "allow_stdin": False, "stop_on_error": True}
    seen = await _request(conn, protocol, "execute_request", execute, "execute_reply")
    seen += await _request(conn, protocol, "kernel_info_request", {}, "kernel_info_reply")
    conn.close()
    return seen


async def _request(conn: Any, protocol: str | None, msg_type: str, content: dict[str, Any],
                   reply: str) -> list[tuple[str, dict[str, Any]]]:
    msg_id = uuid.uuid4().hex
    header = {"msg_id": msg_id, "msg_type": msg_type, "session": uuid.uuid4().hex,
              "username": "test", "version": "5.3", "date": ""}
    if protocol == V1:
        parts = [json.dumps(p).encode() for p in (header, {}, {}, content)]
        await conn.write_message(serialize_msg_to_ws_v1(parts, "shell"),  # type: ignore[no-untyped-call]
                               binary=True)
    else:
        await conn.write_message(json.dumps({"header": header, "parent_header": {},
                                             "metadata": {}, "content": content,
                                             "channel": "shell", "buffers": []}))
    seen: list[tuple[str, dict[str, Any]]] = []
    idle = replied = False
    while not (idle and replied):
        raw = await asyncio.wait_for(conn.read_message(), timeout=120)
        assert raw is not None, "websocket closed"
        if isinstance(raw, bytes):
            _, msg_list = deserialize_msg_from_ws_v1(raw)  # type: ignore[no-untyped-call]
            head, parent, _meta, body = (json.loads(bytes(p)) for p in msg_list[:4])
        else:
            msg = json.loads(raw)
            head, parent, body = msg["header"], msg["parent_header"], msg["content"]
        if parent.get("msg_id") != msg_id:
            continue
        seen.append((head["msg_type"], body))
        idle = idle or (head["msg_type"] == "status" and body["execution_state"] == "idle")
        replied = replied or head["msg_type"] == reply
    return seen


def _run(url: str, kernel: str, protocol: str | None) -> list[tuple[str, dict[str, Any]]]:
    headers = {"Authorization": f"token {TOKEN}"}
    start = urllib.request.Request(url + "/api/kernels", data=json.dumps({"name": kernel})
                                   .encode(), method="POST", headers=headers)
    with urllib.request.urlopen(start, timeout=60) as response:
        kernel_id = json.loads(response.read())["id"]
    try:
        return asyncio.run(_requests(url, kernel_id, protocol, HOSTILE))
    finally:
        stop = urllib.request.Request(url + f"/api/kernels/{kernel_id}", method="DELETE",
                                      headers=headers)
        urllib.request.urlopen(stop, timeout=60).close()


def _bundles(seen: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Every MIME bundle the browser would render: outputs and page payloads."""
    out = [c["data"] for kind, c in seen if isinstance(c, dict)
           and kind in ("display_data", "execute_result", "update_display_data")]
    out += [p["data"] for kind, c in seen if kind == "execute_reply"
            for p in c.get("payload", []) if "data" in p]
    return out


@bwrap_only
@pytest.mark.parametrize("protocol", [None, V1], ids=["legacy", "v1"])
def test_an_isolated_kernel_cannot_send_javascript_to_the_browser(
        server_url: str, protocol: str | None) -> None:
    seen = _run(server_url, "securenb-bwrap", protocol)
    bundles = _bundles(seen)
    assert len(bundles) == 4, seen  # Javascript (withheld note), HTML, page, execute_result
    assert not any("application/javascript" in b for b in bundles), bundles
    html = [str(b["text/html"]) for b in bundles if "text/html" in b]
    assert len(html) == 3, bundles
    for text in html:
        assert not any(bad in text for bad in ("<script", "onerror", "onclick", "javascript:"))
    assert '<img src="x">' not in html[0] and "<img>" in html[0]  # a remote image is not fetched
    assert not [kind for kind, _ in seen if kind.startswith("comm_")], seen
    assert all(isinstance(c, dict) for _, c in seen), seen  # the malformed one is dropped
    display = next(c for kind, c in seen if kind == "display_data" and "text/html" in c["data"])
    assert display["transient"]["display_id"] != "d"  # namespaced, as for %%secure_train
    result = next(c for kind, c in seen if kind == "execute_result")
    assert isinstance(result["execution_count"], int)
    info = next(c for kind, c in seen if kind == "kernel_info_reply")
    assert [link["url"] for link in info["help_links"]] == ["https://docs.python.org/3/"]


@pytest.mark.parametrize("protocol", [None, V1], ids=["legacy", "v1"])
def test_an_ordinary_kernels_output_is_unchanged(server_url: str, protocol: str | None) -> None:
    seen = _run(server_url, "python3", protocol)
    bundles = _bundles(seen)
    assert any("application/javascript" in b for b in bundles), bundles
    assert any("<script>alert(2)</script>" in str(b.get("text/html")) for b in bundles)
    assert any("<script>alert(3)</script>" in str(b.get("text/html")) for b in bundles)
    assert [kind for kind, _ in seen if kind == "comm_open"] == ["comm_open"], seen
    assert ("display_data", ["<script>"]) in seen
    info = next(c for kind, c in seen if kind == "kernel_info_reply")
    assert "javascript:alert(6)" in [link["url"] for link in info["help_links"]]
