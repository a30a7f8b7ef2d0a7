"""Rich output from a sandbox, made inert before the notebook shows it.

JupyterLab runs JavaScript and HTML of outputs produced in the user's session
with the user's rights (the Jupyter API: files, terminals). So only data
crosses: an allowlist of MIME types; HTML sanitised by ``nh3`` (no scripts,
event handlers, ``javascript:`` links, styles or frames; no image other than
an inline ``data:image/``, since the browser has the network the sandbox lacks
and would fetch a remote one, carrying whatever its URL holds); Vega-Lite only
when nothing in the spec names something to load (data, images, links,
cursors, embed options); JavaScript never.
Display ids are renamed into the sandbox's own namespace, so a sandbox can
only update displays it created, never one of the parent's (e.g. a scan
verdict).
"""

from __future__ import annotations

import json
from typing import Any

import nh3

SAFE_TYPES = frozenset({
    "text/plain", "image/png", "image/jpeg", "image/gif", "image/webp", "application/json",
})
VEGA_LITE = frozenset({"application/vnd.vegalite.v4+json", "application/vnd.vegalite.v5+json"})
# Spec keys through which Vega / vega-embed load a URL (data, lookups, image marks,
# links, CSS cursors, embed options such as a loader's base URL).
_VEGA_LOADERS = frozenset({"url", "href", "cursor", "usermeta"})
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
_WIDGET_KEYS = {"model_id", "version_major", "version_minor"}
WITHHELD = "[securenb] sandbox output withheld (not an inert type): {types}"


def _widget_view(value: Any) -> bool:
    """A widget view refers to a model by id and carries no code; nothing more."""
    return isinstance(value, dict) and set(value) <= _WIDGET_KEYS and all(
        isinstance(v, (str, int)) for v in value.values())


def inert(content: dict[str, Any], namespace: str) -> dict[str, Any]:
    """``content`` of a display_data / update_display_data / execute_result message with
    only inert data; ``namespace`` prefixes its display id (one per sandbox)."""
    data = content.get("data") or {}
    kept: dict[str, Any] = {}
    dropped = []
    for mime, value in data.items() if isinstance(data, dict) else ():
        if mime in SAFE_TYPES and isinstance(value, (str, dict, list)):
            kept[mime] = value
        elif mime == "text/html" and isinstance(value, (str, list)):
            kept[mime] = nh3.clean("".join(value) if isinstance(value, list) else value,
                                   url_schemes=_URL_SCHEMES, attribute_filter=_no_fetch)
        elif (mime in VEGA_LITE and isinstance(value, dict) and not _loads(value)) or (
                mime == WIDGET_VIEW and _widget_view(value)):
            kept[mime] = value
        else:
            dropped.append(str(mime))
    if dropped and "text/plain" not in kept:
        kept["text/plain"] = WITHHELD.format(types=", ".join(sorted(dropped)))
    metadata = content.get("metadata") or {}
    out: dict[str, Any] = {"data": kept, "metadata": {
        k: v for k, v in metadata.items() if k in kept and _plain(v)
    } if isinstance(metadata, dict) else {}}
    display_id = (content.get("transient") or {}).get("display_id")
    if isinstance(display_id, str):
        out["transient"] = {"display_id": f"{namespace}{display_id}"}
    return out


_URL_SCHEMES = nh3.ALLOWED_URL_SCHEMES | {"data"}


def _no_fetch(tag: str, attr: str, value: str) -> str | None:
    """Keep what the browser loads only if inline (``data:image/``); a ``data:`` link is
    dropped (only images may be inline)."""
    inline = value.strip().lower()
    if attr == "src":
        return value if inline.startswith("data:image/") else None
    return None if inline.startswith("data:") else value


def _loads(spec: Any) -> bool:
    """Whether a Vega-Lite spec names anything the browser would load (any depth)."""
    if isinstance(spec, dict):
        return any(k in _VEGA_LOADERS or _loads(v) for k, v in spec.items())
    if isinstance(spec, list):
        return any(_loads(v) for v in spec)
    return False


def _plain(value: Any) -> bool:
    """Metadata such as image width/height: small plain JSON."""
    try:
        return len(json.dumps(value)) < 4096
    except (TypeError, ValueError):
        return False
