"""Run magics the way users do: cells executed in a real ipykernel (nbclient)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient


class _RecordingClient(NotebookClient):
    """nbclient as papermill runs it, noting the type of each message it sends the kernel
    on the shell channel (the runner's own requests, and any answer a widget asked for)."""

    sent: list[str]

    async def async_start_new_kernel_client(self) -> Any:
        kc = await super().async_start_new_kernel_client()
        send = kc.shell_channel.send

        def recording(msg: dict[str, Any]) -> None:
            self.sent.append(msg["header"]["msg_type"])
            send(msg)

        kc.shell_channel.send = recording
        return kc


def execute(cwd: Path, *cells: str) -> _RecordingClient:
    """Execute ``cells`` in a fresh kernel started in ``cwd``; the client (its notebook,
    widget state and what it sent the kernel)."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    client = _RecordingClient(nb, timeout=300, kernel_name="python3", allow_errors=True,
                              resources={"metadata": {"path": str(cwd)}})
    client.sent = []
    client.km = client.create_kernel_manager()
    client.km.kernel_cmd = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    client.execute()
    return client


RUNNER_REQUESTS = {"kernel_info_request", "execute_request"}


def run_in_kernel(cwd: Path, *cells: str) -> list[Any]:
    """Execute ``cells`` in a fresh kernel started in ``cwd``; the executed cells. No cell
    may need the runner to answer it (an answer sent mid-cell stalls nbclient/papermill)."""
    client = execute(cwd, *cells)
    assert set(client.sent) <= RUNNER_REQUESTS, client.sent
    return list(client.nb.cells)
