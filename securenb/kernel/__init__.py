"""Kernel front-end: ``%load_ext securenb`` registers every feature's magics.

Each feature keeps its magics in its own module with a ``register(ipython)``
function, so adding a feature is one line in ``FEATURES``.
"""

from __future__ import annotations

import importlib
from typing import Any

FEATURES = (
    "securenb.kernel.scan_magics",
    "securenb.kernel.sign_magics",
    "securenb.kernel.train_magics",
    "securenb.kernel.bias_magics",
    "securenb.kernel.gate_magics",
)


def load_ipython_extension(ipython: Any) -> None:
    """Called by ``%load_ext securenb.kernel`` (and ``%load_ext securenb``)."""
    for name in FEATURES:
        importlib.import_module(name).register(ipython)
