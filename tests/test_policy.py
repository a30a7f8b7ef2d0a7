"""Policy files: where they are read from and how mistakes are reported."""

from __future__ import annotations

from pathlib import Path

import pytest

from securenb.core.policy import Policy, load_policy
from securenb.errors import PolicyError


def test_defaults_when_no_policy(tmp_path: Path) -> None:
    policy, source = load_policy(tmp_path)
    assert source is None
    assert policy.isolation.backend == "bwrap" and policy.isolation.network == "none"


def test_pyproject_table(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname="x"\n[tool.securenb.isolation]\nbackend="podman"\nmemory="8g"\n'
        '[tool.securenb.roles]\nadmin=["alice"]\n'
    )
    policy, source = load_policy(tmp_path)
    assert source == tmp_path / "pyproject.toml"
    assert policy.isolation.backend == "podman" and policy.roles == {"admin": ("alice",)}
    assert policy.digest() != Policy().digest()


def test_securenb_toml(tmp_path: Path) -> None:
    (tmp_path / "securenb.toml").write_text('[scan]\nallow_globals=["mypkg.Model"]\n')
    policy, _ = load_policy(tmp_path)
    assert policy.scan.allow_globals == ("mypkg.Model",)


def test_pyproject_without_our_table_is_ignored(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.ruff]\nline-length=1\n")
    assert load_policy(tmp_path)[1] is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[tool.securenb.isolation]\nbackned="bwrap"\n',
            r"pyproject.toml: unknown key 'tool.securenb.isolation.backned'"
            r" \(did you mean 'backend'\?\)",
        ),
        (
            '[tool.securenb.isolation]\nbackend="vm"\n',
            r"pyproject.toml: invalid value for 'tool.securenb.isolation.backend'",
        ),
        (
            "[tool.securenb.fairnes]\n",
            r"unknown key 'tool.securenb.fairnes' \(did you mean 'fairness'\?\)",
        ),
        (
            "[tool.securenb.fairness]\nmax_equalized_odds_difference=2\n",
            r"invalid value for 'tool.securenb.fairness.max_equalized_odds_difference'",
        ),
        ('[tool.securenb.isolation]\nnetwork="host"\n', r"isolation.network"),
        ("[tool.securenb\n", r"pyproject.toml: not valid TOML"),
    ],
)
def test_mistakes_name_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "pyproject.toml").write_text(text)
    with pytest.raises(PolicyError, match=message):
        load_policy(tmp_path)


def test_two_policy_files_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.securenb.scan]\n")
    (tmp_path / "securenb.toml").write_text("[scan]\n")
    with pytest.raises(PolicyError, match="keep one"):
        load_policy(tmp_path)
