"""The notebook a kernel belongs to, as run provenance names it.

jupyter_server sets ``JPY_SESSION_NAME`` in a kernel's environment to its
session's path: the notebook's OS path (or, from older servers, its API path,
the kernel starting in the notebook's folder). Provenance names it relative to
the workspace root (``externalParameters.notebook``, which the artifact catalog
reads to follow a notebook's artifacts), and only a notebook inside the
workspace: a path outside it, a console's session or none is left out rather
than recorded as an absolute path from the host.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

SESSION_ENV = "JPY_SESSION_NAME"


def session_notebook(root: Path, session: str | None, cwd: Path) -> str | None:
    """``session`` (a ``JPY_SESSION_NAME``) relative to the workspace ``root``, or None."""
    if not session:
        return None
    path = Path(session)
    if not path.is_absolute():  # an API path: the kernel runs in the notebook's folder
        path = cwd / PurePosixPath(session).name
    resolved = path.resolve()
    if resolved.suffix != ".ipynb":
        return None
    try:
        return resolved.relative_to(root.resolve()).as_posix()
    except ValueError:
        return None
