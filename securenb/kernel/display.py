"""Show a result the way its surroundings can read it.

JupyterLab gets an ipywidgets HTML widget; a renderer without widgets (a saved
or papermill notebook) falls back to the HTML and text in the same bundle; a
terminal IPython gets the text only.
"""

from __future__ import annotations

from collections.abc import Callable

from IPython.display import display


def show_result(text: str, html: Callable[[], str]) -> None:
    """Display ``text`` (and, in a kernel, the page ``html()`` builds) in one output."""
    if not in_kernel():
        print(text)  # a terminal IPython: text is the display
        return
    page = html()
    bundle: dict[str, object] = {"text/html": page, "text/plain": text}
    try:
        import ipywidgets  # type: ignore[import-untyped]
    except ImportError:
        display(bundle, raw=True)  # type: ignore[no-untyped-call]
        return
    widget = ipywidgets.HTML(value=page)
    bundle["application/vnd.jupyter.widget-view+json"] = {
        "model_id": widget.model_id,
        "version_major": 2,
        "version_minor": 0,
    }
    display(bundle, raw=True)  # type: ignore[no-untyped-call]


def in_kernel() -> bool:
    """True inside a Jupyter kernel (not a terminal IPython)."""
    from IPython import get_ipython

    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None
