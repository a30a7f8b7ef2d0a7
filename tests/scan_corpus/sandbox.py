"""A throwaway sandbox for the real loaders that run hostile samples' payloads (tests only).

The twins' payloads are harmless (``touch MARKER``), but a loader that runs a sample runs
whatever the sample says: it runs under bwrap with no network, the whole file system
read-only and one writable folder (where the samples and the marker are).
"""

from __future__ import annotations

import shutil
from pathlib import Path


def throwaway(argv: list[str], writable: Path) -> list[str]:
    """``argv`` wrapped to run in a fresh bwrap sandbox that can write only ``writable``."""
    bwrap = shutil.which("bwrap")
    assert bwrap, "bwrap (bubblewrap, scripts/system-deps.sh) runs the loader twins"
    folder = str(writable.resolve())
    return [
        bwrap,
        "--ro-bind", "/", "/",
        "--tmpfs", "/tmp",
        "--bind", folder, folder,
        "--dev", "/dev",
        "--proc", "/proc",
        "--unshare-all",
        "--die-with-parent",
        "--new-session",
        "--cap-drop", "ALL",
        "--setenv", "HOME", folder,
        "--chdir", folder,
        *argv,
    ]  # fmt: skip
