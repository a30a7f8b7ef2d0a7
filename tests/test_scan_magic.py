"""`%scan_model`: returns the report, stops the cell unless SAFE, records in a workspace."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.testing.globalipapp import get_ipython

from securenb.kernel import scan_magics
from securenb.scan import Verdict


class Payload:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, ("true",)


@pytest.fixture(scope="module")
def ip() -> Any:
    shell = get_ipython()
    scan_magics.register(shell)
    return shell


def test_safe_model_returns_report(
    ip: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "w.pkl"
    path.write_bytes(pickle.dumps([1, 2]))
    report = ip.run_line_magic("scan_model", f"{path} --no-record")
    assert report.verdict is Verdict.SAFE
    assert "SAFE" in capsys.readouterr().out


def test_unsafe_model_stops_the_cell(
    ip: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.pkl"
    path.write_bytes(pickle.dumps(Payload()))
    with pytest.raises(UsageError, match="UNSAFE"):
        ip.run_line_magic("scan_model", str(path))
    assert "posix.system" in capsys.readouterr().out
    report = ip.run_line_magic("scan_model", f"{path} --no-fail")
    assert report.verdict is Verdict.UNSAFE


def test_usage_errors(ip: Any, tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        ip.run_line_magic("scan_model", str(tmp_path / "missing"))
    with pytest.raises(UsageError):
        ip.run_line_magic("scan_model", "")


def test_html_card_escapes(tmp_path: Path) -> None:
    path = tmp_path / "<b>.pkl"
    path.write_bytes(pickle.dumps(Payload()))
    from securenb.scan import scan_path

    page = scan_magics.to_html(scan_path(path))
    assert "&lt;b&gt;" in page and "<b>.pkl" not in page and "UNSAFE" in page


def test_records_in_workspace(ip: Any, workspace: Any, tmp_path: Path) -> None:
    path = tmp_path / "w.pkl"
    path.write_bytes(pickle.dumps([1]))
    ip.run_line_magic("scan_model", str(path))
    (record,) = workspace.store.list_attestations()
    assert record.subjects[0][0] == "w.pkl"
