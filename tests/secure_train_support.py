"""Shared by the %%secure_train tests: a shell with the magic, running it, reading provenance."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell

from securenb.core.attest import SLSA_PROVENANCE_PREDICATE
from securenb.core.workspace import Workspace
from securenb.kernel.train_magics import SecureTrainMagics


@pytest.fixture(scope="module")
def shell() -> Iterator[InteractiveShell]:
    main = sys.modules["__main__"]
    ip = InteractiveShell.instance()
    magics = SecureTrainMagics(ip)
    ip.register_magics(magics)
    yield ip
    magics.trainer.shutdown()
    # later modules make their own shells (another class) and spawn processes that
    # re-import __main__: leave neither the singleton nor IPython's __main__ behind
    InteractiveShell.clear_instance()
    sys.modules["__main__"] = main


def train(shell: InteractiveShell, line: str, cell: str) -> Any:
    """Run the magic, then wait for its records (written on the recorder thread)."""
    try:
        return shell.run_cell_magic("secure_train", line, cell)
    finally:
        shell.magics_manager.registry["SecureTrainMagics"].trainer.flush()


def provenance(ws: Workspace) -> dict[str, Any]:
    """The newest run's SLSA provenance, after checking its signature."""
    run = ws.store.list_runs(limit=1)[0]
    assert run.provenance is not None
    _, statement = ws.load_attestation(run.provenance)
    assert statement["predicateType"] == SLSA_PROVENANCE_PREDICATE
    return statement
