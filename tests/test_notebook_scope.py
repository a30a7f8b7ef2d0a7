"""What the `source` scope covers (issues 11.5, 10.4): everything a reader sees or a run uses.

Markdown attachments (the images a signed cell shows) and cell tags (papermill's
`parameters`) are signed; a notebook executed by papermill (renamed, with the
metadata papermill and nbformat add) still verifies, and any content change
after it is caught. A notebook with duplicate JSON keys is refused.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import papermill
import pytest

from securenb.core.workspace import Workspace
from securenb.errors import SecurenbError
from securenb.signing import SignRequest, sign, verify

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n honest chart").decode()


def notebook(path: Path) -> Path:
    cells = [
        {"cell_type": "markdown", "id": "intro", "metadata": {},
         "source": "Accuracy: ![chart](attachment:chart.png)",
         "attachments": {"chart.png": {"image/png": PNG}}},
        {"cell_type": "code", "id": "params", "metadata": {"tags": ["parameters"]},
         "execution_count": None, "outputs": [], "source": "epochs = 1"},
        {"cell_type": "code", "id": "train", "metadata": {}, "execution_count": None,
         "outputs": [], "source": "print(epochs * 2)"},
    ]
    path.write_text(json.dumps({
        "cells": cells, "nbformat": 4, "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                    "language": "python"}}}))
    return path


@pytest.fixture
def signed(workspace: Workspace) -> Path:
    path = notebook(workspace.root / "train.ipynb")
    sign(workspace, SignRequest(str(path)))
    assert verify(workspace, path).verified
    return path


def edit(path: Path, change: object) -> None:
    nb = json.loads(path.read_text())
    change(nb)  # type: ignore[operator]
    path.write_text(json.dumps(nb))


def test_changed_attachment_is_caught(workspace: Workspace, signed: Path) -> None:
    evil = base64.b64encode(b"\x89PNG\r\n\x1a\n doctored chart").decode()
    edit(signed, lambda nb: nb["cells"][0]["attachments"]["chart.png"].update(
        {"image/png": evil}))
    result = verify(workspace, signed)
    assert not result.verified
    assert any("cell #1" in p for p in result.problems), result.problems


def test_changed_tag_is_caught(workspace: Workspace, signed: Path) -> None:
    def move_parameters(nb: dict) -> None:  # type: ignore[type-arg]
        nb["cells"][1]["metadata"]["tags"] = []
        nb["cells"][2]["metadata"]["tags"] = ["parameters"]
    edit(signed, move_parameters)
    result = verify(workspace, signed)
    assert not result.verified
    assert any("cell #2" in p for p in result.problems), result.problems


def test_papermill_output_verifies_and_edits_after_it_are_caught(
        workspace: Workspace, signed: Path) -> None:
    out = workspace.root / "runs" / "train-output.ipynb"
    out.parent.mkdir()
    papermill.execute_notebook(str(signed), str(out), kernel_name="python3", progress_bar=False)
    executed = json.loads(out.read_text())
    assert "papermill" in executed["metadata"]
    result = verify(workspace, out)
    assert result.verified, result.lines()
    assert any("train.ipynb" in n for n in result.notes), result.notes  # the name, as a note
    edit(out, lambda nb: nb["cells"][2].update({"source": "print('exfiltrate')"}))
    assert not verify(workspace, out).verified


def test_duplicate_json_keys_are_refused(workspace: Workspace, signed: Path) -> None:
    text = signed.read_text().rstrip()
    # a second "cells" key: json.loads keeps the last one, other readers the first
    signed.write_text(text[:-1] + ', "cells": []}\n')
    with pytest.raises(SecurenbError, match="duplicate key 'cells'"):
        verify(workspace, signed)
