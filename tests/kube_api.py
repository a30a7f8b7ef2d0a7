"""A stand-in Kubernetes API server for tests: the calls a pod start makes, over real
HTTP, with the objects held in memory (there is no cluster on this machine)."""

from __future__ import annotations

import http.server
import json
import threading
from pathlib import Path
from typing import Any

FORBIDDEN = ('pods "securenb-doctor" is forbidden: violates PodSecurity "restricted:latest": '
             'allowPrivilegeEscalation != false')


class ApiServer:
    """The calls a pod start makes, over real HTTP: objects in memory; pods end in
    ``phase`` (with ``message``), or are refused with 403 when ``refuse_pods``."""

    def __init__(self, phase: str = "Succeeded", message: str = "",
                 refuse_pods: bool = False) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.created: list[dict[str, Any]] = []
        self.deleted: list[str] = []
        api = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _send(self, code: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if refuse_pods and body["kind"] == "Pod":
                    self._send(403, {"kind": "Status", "status": "Failure", "code": 403,
                                     "reason": "Forbidden", "message": FORBIDDEN})
                    return
                api.objects[f"{self.path}/{body['metadata']['name']}"] = body
                api.created.append(body)
                self._send(201, body)

            def do_GET(self) -> None:
                found = api.objects.get(self.path)
                if found is None:
                    self._send(404, {"kind": "Status", "code": 404})
                    return
                self._send(200, {**found, "status": {"phase": phase, "message": message}})

            def do_DELETE(self) -> None:
                path = self.path.split("?")[0]
                api.deleted.append(path)
                found = api.objects.pop(path, None)
                self._send(200 if found else 404, {"kind": "Status"})

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def kubeconfig(self, folder: Path) -> Path:
        config = folder / "kubeconfig"
        port = self.server.server_address[1]
        config.write_text(
            "apiVersion: v1\nkind: Config\ncurrent-context: t\n"
            f"clusters: [{{name: t, cluster: {{server: 'http://127.0.0.1:{port}'}}}}]\n"
            "contexts: [{name: t, context: {cluster: t, user: t}}]\nusers: [{name: t, user: {}}]\n")
        return config

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"
