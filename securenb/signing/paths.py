"""Where signatures go by default, and whether one lies inside a model folder."""

from __future__ import annotations

import os
from pathlib import Path


def default_signature_path(artifact: Path) -> Path:
    """The sidecar ``<artifact>.sig`` beside a file or a folder."""
    artifact = Path(os.path.abspath(artifact))
    return artifact.with_name(artifact.name + ".sig")


def relative_inside(path: Path, folder: Path) -> str | None:
    """``path`` relative to ``folder`` (POSIX) if it is inside it, else None."""
    try:
        return Path(os.path.abspath(path)).relative_to(os.path.abspath(folder)).as_posix()
    except ValueError:
        return None
