"""The ``securenb`` jupyter_server extension: server-side signing and inert output of
isolated kernels on the kernel websocket (RBAC, events and the sidebar API come in
later issues).

Enable with ``jupyter server extension enable securenb.server`` or
``--ServerApp.jpserver_extensions='{"securenb.server": true}'``.
"""

from __future__ import annotations

from pathlib import Path

from jupyter_server.extension.application import ExtensionApp
from jupyter_server.serverapp import ServerApp
from jupyter_server.services.kernels.connection.channels import ZMQChannelsWebsocketConnection

from securenb.server.handlers import handlers
from securenb.server.kernel_output import SandboxOutputConnection
from securenb.server.kernel_socket import KernelSocket
from securenb.server.signer import SignerService


class SecurenbExtension(ExtensionApp):
    """Holds the signing keys for the server's kernels and its REST clients."""

    name = "securenb"
    load_other_extensions = True

    signer: SignerService
    kernel_socket: KernelSocket

    def initialize_settings(self) -> None:
        assert self.serverapp is not None
        self.signer = SignerService(Path(self.serverapp.root_dir), self.log)
        self.kernel_socket = KernelSocket(self.signer, self.serverapp.kernel_manager, self.log)
        self.settings["securenb_signer"] = self.signer
        self._filter_sandbox_output()

    def _filter_sandbox_output(self) -> None:
        """Route kernel websockets through SandboxOutputConnection. Set here, not in a
        config file, so it holds however the extension is enabled; a configured class
        of another kind (e.g. a gateway's) is kept, with a warning."""
        assert self.serverapp is not None
        current = self.settings.get("kernel_websocket_connection_class")
        if current is ZMQChannelsWebsocketConnection:  # settings go to the web app after this
            self.serverapp.kernel_websocket_connection_class = SandboxOutputConnection
            self.settings["kernel_websocket_connection_class"] = SandboxOutputConnection
        elif not (isinstance(current, type) and issubclass(current, SandboxOutputConnection)):
            self.log.warning("securenb: kernel websocket class %s kept; output of isolated "
                             "kernels reaches the browser unfiltered", current)

    def initialize_handlers(self) -> None:
        self.handlers.extend(handlers())

    async def _start_jupyter_server_extension(self, serverapp: ServerApp) -> None:
        self.kernel_socket.start()

    async def stop_extension(self) -> None:
        self.kernel_socket.stop()
        self.signer.close()
