"""Shared fixtures: a real workspace in a temporary folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest_plugins = ["secure_train_support"]  # the `shell` fixture of the %%secure_train tests

TEST_PASSPHRASE = "correct horse battery staple"  # a test-only passphrase


@pytest.fixture(autouse=True, scope="session")
def _state_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Kept audit checkpoints (securenb.core.audit.trust) go to a temporary folder, not ~."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SECURENB_STATE_DIR", str(tmp_path_factory.mktemp("state")))
        yield


@pytest.fixture
def passphrase(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("SECURENB_KEY_PASSPHRASE", TEST_PASSPHRASE)
    return TEST_PASSPHRASE


@pytest.fixture
def workspace(tmp_path: Path, passphrase: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    from securenb.core.workspace import Workspace

    monkeypatch.chdir(tmp_path)
    yield Workspace.init(tmp_path, passphrase)
