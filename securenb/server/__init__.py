"""jupyter_server extension ``securenb``: server-side signing for kernels and REST clients."""

from __future__ import annotations

from typing import Any

from securenb.server.app import SecurenbExtension

__all__ = ["SecurenbExtension"]


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    return [{"module": "securenb.server", "app": SecurenbExtension}]
