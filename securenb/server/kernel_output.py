"""A sandboxed kernel's output, made inert on its way to the browser.

JupyterLab trusts the live output of a kernel: its JavaScript and HTML run with
the user's rights (the Jupyter API: files, terminals, i.e. the host). A
whole-notebook isolated kernel (a ``SandboxProvisioner``) runs untrusted code,
so for such kernels every message to the browser that carries a MIME bundle
(outputs, page payloads, inspector and debugger bundles) passes through
``securenb.isolation.display.inert`` (the filter of ``%%secure_train``
output), one the filter cannot read is dropped, Help-menu links must be http(s), and comm messages
(widget state, which carries HTML and outputs of its own) are not forwarded.
Other kernels are untouched.
"""

from __future__ import annotations

import hmac
from typing import Any

from jupyter_server.services.kernels.connection.channels import ZMQChannelsWebsocketConnection

from securenb.isolation.display import inert
from securenb.isolation.provisioner import SandboxProvisioner

NAMESPACE = "securenb-sandbox:"
_BUNDLES = frozenset({"display_data", "execute_result", "update_display_data"})
_COMMS = frozenset({"comm_open", "comm_msg", "comm_close"})
_FILTERED = _BUNDLES | _COMMS | {
    "execute_reply", "inspect_reply", "debug_reply", "kernel_info_reply"}


def sandboxed(kernel_manager: Any) -> bool:
    """Whether a kernel runs under one of securenb's sandbox provisioners."""
    return isinstance(getattr(kernel_manager, "provisioner", None), SandboxProvisioner)


def inert_message(msg: dict[str, Any]) -> dict[str, Any] | None:
    """``msg`` (a deserialized kernel message) with only inert MIME data, or None to drop it."""
    kind = msg["header"].get("msg_type")
    content = msg["content"]
    if kind in _COMMS:
        return None
    if kind in _BUNDLES:
        rest = {k: v for k, v in content.items() if k not in ("data", "metadata", "transient")}
        msg["content"] = {**rest, **inert(content, NAMESPACE)}
    elif kind == "execute_reply":  # a "page" payload is shown as a display_data output
        msg["content"]["payload"] = [
            {**p, **inert(p, NAMESPACE)} if "data" in p else p
            for p in content.get("payload") or [] if isinstance(p, dict)]
    elif kind == "inspect_reply" and "data" in content:  # rendered by the inspector/tooltip
        msg["content"] = {**content, **inert(content, NAMESPACE)}
    elif kind == "debug_reply" and isinstance(content.get("body"), dict) and \
            "data" in content["body"]:  # richInspectVariables: the debugger renders it
        msg["content"]["body"] = {**content["body"], **inert(content["body"], NAMESPACE)}
    elif kind == "kernel_info_reply":  # the Help menu opens these (a javascript: URL would run)
        msg["content"]["help_links"] = [
            link for link in content.get("help_links") or [] if isinstance(link, dict)
            and str(link.get("url", "")).lower().startswith(("https://", "http://"))]
    return msg


class SandboxOutputConnection(ZMQChannelsWebsocketConnection):
    """The kernel websocket, for both protocols, with a sandboxed kernel's output made inert."""

    def handle_outgoing_message(self, stream: Any, outgoing_msg: list[Any]) -> None:
        if not sandboxed(self.kernel_manager):
            super().handle_outgoing_message(stream, outgoing_msg)
            return
        idents, parts = self.session.feed_identities(outgoing_msg)
        parts = [p if isinstance(p, bytes) else p.bytes for p in parts]  # zmq.Frame
        # The signature is checked here, not by Session.deserialize: that records it, and
        # the base class deserializes the same message again (a "duplicate signature").
        if len(parts) < 5 or not hmac.compare_digest(self.session.sign(parts[1:5]), parts[0]):
            self.log.warning("securenb: dropped an unsigned message from a sandboxed kernel")
            return
        keys = ("header", "parent_header", "metadata", "content")
        try:  # the kernel holds the key: what it signs may still be anything
            msg = {k: self.session.unpack(v) for k, v in zip(keys, parts[1:5], strict=True)}
            filtered = msg["header"].get("msg_type") in _FILTERED
            kept = inert_message({**msg, "buffers": parts[5:]}) if filtered else msg
        except (ValueError, TypeError, AttributeError, KeyError):
            self.log.warning("securenb: dropped a malformed message from a sandboxed kernel")
            return
        if not filtered:
            super().handle_outgoing_message(stream, outgoing_msg)
        elif kept is not None:
            super().handle_outgoing_message(stream, self.session.serialize(kept, idents))
