"""The ``securenb`` jupyter_server extension: server-side keys, the REST API
(securenb.server.api), live events (securenb.server.events), and inert output of
isolated kernels on the kernel websocket (securenb.server.kernel_output); RBAC is
the authorizer class (securenb.server.authorizer) the server is configured with.

Enable with ``jupyter server extension enable securenb.server`` or
``--ServerApp.jpserver_extensions='{"securenb.server": true}'``.
"""

from __future__ import annotations

from pathlib import Path

from jupyter_server.extension.application import ExtensionApp
from jupyter_server.serverapp import ServerApp
from jupyter_server.services.kernels.connection.channels import ZMQChannelsWebsocketConnection
from traitlets import Float, Int

from securenb.server.api import Context, handlers
from securenb.server.events import EventRelay
from securenb.server.events import register as register_events
from securenb.server.kernel_output import SandboxOutputConnection
from securenb.server.kernel_socket import KernelSocket
from securenb.server.signer import SignerService


class SecurenbExtension(ExtensionApp):
    """Holds the signing keys for the server's kernels and its REST clients."""

    name = "securenb"
    load_other_extensions = True

    signer: SignerService
    api: Context
    events: EventRelay
    write_rate = Float(5.0, config=True, help="signing/scanning/gate requests a second, per user")
    write_burst = Int(20, config=True, help="burst of such requests allowed at once, per user")
    read_rate = Float(200.0, config=True, help="other API requests a second, per user")
    read_burst = Int(1000, config=True, help="burst of other API requests, per user")
    kernel_socket: KernelSocket

    def initialize_settings(self) -> None:
        assert self.serverapp is not None
        self.signer = SignerService(Path(self.serverapp.root_dir), self.log)
        self.kernel_socket = KernelSocket(self.signer, self.serverapp.kernel_manager, self.log,
                                          self.serverapp.authorizer)
        self.settings["securenb_signer"] = self.signer
        self.api = Context(self.signer, Path(self.serverapp.root_dir).resolve(),
                           self.write_rate, self.write_burst, self.read_rate, self.read_burst)
        self.settings["securenb_api"] = self.api
        bus = self.serverapp.event_logger
        assert bus is not None  # jupyter_server >= 2 always has one
        register_events(bus)
        self.events = EventRelay(self.signer, bus, self.log)
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
        await self.events.start()

    async def stop_extension(self) -> None:
        self.kernel_socket.stop()
        self.api.close()
        self.events.stop()
        self.signer.close()
