"""Notebook signatures embedded in ``metadata.securenb.signature`` (a DSSE envelope).

Not nbformat's ``NotebookNotary``: that is an HMAC under a per-machine secret,
which nobody else can check. Ours is a public-key signature over an in-toto
statement whose subject is the SHA-256 of the RFC 8785 canonical JSON of the
notebook, as nbformat holds it in memory (multi-line strings joined), with
``metadata.securenb.signature`` removed. Two scopes:

- ``source``: what a reader sees and a run uses: each cell's type, source,
  attachments (the images a markdown cell shows) and tags (papermill's
  ``parameters`` decides where parameters go), and the kernelspec. Survives
  re-execution: outputs, execution counts, the other cell metadata and the
  notebook metadata papermill and nbformat add (``papermill``,
  ``language_info``, per-cell ``execution``) are outside it.
- ``executed``: the whole notebook, outputs and metadata included.

The file name is signed as the subject's name, but a notebook is often
written under another name (papermill's output): a different name is a note,
not a failure; the content is what is checked. A notebook whose JSON repeats a
key is refused (readers disagree on which value counts).

The statement also keeps one digest per cell, so a verifier names the cells
that were changed, added or removed, not just "the notebook changed".
"""

from __future__ import annotations

import base64
import binascii
import copy
import difflib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from securenb.core.attest import IN_TOTO_PAYLOAD_TYPE, STATEMENT_TYPE, pae, sign_envelope
from securenb.core.canonical import (
    DuplicateKeyError,
    canonical_json,
    no_duplicate_keys,
    sha256_hex,
)
from securenb.core.fsutil import atomic_write_bytes
from securenb.core.keys import PrivateKey
from securenb.core.store import now_rfc3339
from securenb.errors import SecurenbError, SignatureError, at
from securenb.signing.options import SCOPES as SCOPES
from securenb.signing.options import Scope as Scope
from securenb.signing.result import SignerInfo, Verification
from securenb.signing.trust import Trust

NOTEBOOK_PREDICATE = "https://securenb.dev/signature/notebook/v1"
CANONICALIZATION = "RFC 8785 JSON of the nbformat-4 notebook, lines joined, signature removed"


@dataclass(frozen=True)
class SignedNotebook:
    """What signing a notebook produced: its subject digest and cell count."""

    path: Path
    digest: str
    cells: int
    scope: Scope
    signer: SignerInfo
    signed_at: str


def read_notebook(path: Path) -> dict[str, Any]:
    """The notebook's JSON as stored (nbformat 4), or an error naming the file."""
    try:
        data = json.loads(Path(path).read_bytes(), object_pairs_hook=no_duplicate_keys)
    except DuplicateKeyError as exc:
        raise SecurenbError(at(path, f"not a notebook: duplicate key {exc.key!r} in its JSON "
                                     "(readers disagree on which value counts)")) from None
    except OSError as exc:
        raise SecurenbError(at(path, f"cannot read ({exc.strerror})")) from None
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise SecurenbError(at(path, f"not a notebook: invalid JSON ({exc})")) from None
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        raise SecurenbError(at(path, "not a notebook: no list of cells"))
    if data.get("nbformat") != 4:
        raise SecurenbError(at(path, f"nbformat {data.get('nbformat')!r} is not supported; "
                                     "convert it to nbformat 4 first"))
    return data


def unsigned(nb: dict[str, Any]) -> dict[str, Any]:
    """A copy without ``metadata.securenb.signature``, multi-line strings joined."""
    out = copy.deepcopy(nb)
    ours = out.get("metadata", {}).get("securenb")
    if isinstance(ours, dict):
        ours.pop("signature", None)
        if not ours:
            del out["metadata"]["securenb"]
    # Deferred: nbformat imports jsonschema (~20 MB, ~0.8 s with its format checkers),
    # which signing or verifying a model does not need.
    import nbformat
    from nbformat.v4.rwbase import rejoin_lines  # nbformat's own in-memory form

    node = nbformat.from_dict(out)  # type: ignore[no-untyped-call]
    rejoin_lines(node)  # type: ignore[no-untyped-call]
    return json.loads(json.dumps(node))  # type: ignore[no-any-return]


def scoped(nb: dict[str, Any], scope: Scope) -> dict[str, Any]:
    """The part of an unsigned notebook that ``scope`` covers."""
    if scope == "executed":
        return nb
    return {
        "cells": [_cell_source(c) for c in nb["cells"]],
        "kernelspec": nb.get("metadata", {}).get("kernelspec"),
    }


def _cell_source(cell: dict[str, Any]) -> dict[str, Any]:
    """A cell as the ``source`` scope covers it (attachments and tags only when present,
    so the digest of a cell without them is what it always was)."""
    out = {"cell_type": cell.get("cell_type"), "source": cell.get("source", "")}
    if cell.get("attachments"):
        out["attachments"] = cell["attachments"]
    metadata = cell.get("metadata")
    tags = metadata.get("tags") if isinstance(metadata, dict) else None
    if tags:
        out["tags"] = tags
    return out


def _cell_digests(nb: dict[str, Any], scope: Scope) -> list[dict[str, Any]]:
    out = []
    for cell in nb["cells"]:
        entry = {"type": cell.get("cell_type"),
                 "source": sha256_hex(canonical_json(_cell_source(cell)))}
        if scope == "executed":
            entry["cell"] = sha256_hex(canonical_json(cell))
        if "id" in cell:
            entry["id"] = cell["id"]
        out.append(entry)
    return out


def _metadata_digest(nb: dict[str, Any], scope: Scope) -> str:
    meta = nb.get("metadata", {})
    return sha256_hex(canonical_json(meta if scope == "executed" else meta.get("kernelspec")))


def statement_for(nb: dict[str, Any], name: str, scope: Scope, signed_at: str) -> dict[str, Any]:
    """The in-toto statement signed into the notebook."""
    clean = unsigned(nb)
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": name,
                     "digest": {"sha256": sha256_hex(canonical_json(scoped(clean, scope)))}}],
        "predicateType": NOTEBOOK_PREDICATE,
        "predicate": {
            "scope": scope,
            "canonicalization": CANONICALIZATION,
            "signedAt": signed_at,
            "metadata": _metadata_digest(clean, scope),
            "cells": _cell_digests(clean, scope),
        },
    }


def sign_notebook(path: Path, key: PrivateKey, scope: Scope = "source") -> SignedNotebook:
    """Embed a signature in the notebook at ``path`` (rewritten atomically)."""
    if scope not in SCOPES:
        raise SecurenbError(f"unknown notebook signature scope {scope!r}: use one of {SCOPES}")
    path = Path(path)
    nb = read_notebook(path)
    signed_at = now_rfc3339()
    statement = statement_for(nb, path.name, scope, signed_at)
    envelope = sign_envelope(statement, key)
    nb.setdefault("metadata", {}).setdefault("securenb", {})["signature"] = envelope
    text = json.dumps(nb, sort_keys=True, indent=1, ensure_ascii=False) + "\n"
    atomic_write_bytes(path, text.encode("utf-8"), mode=path.stat().st_mode & 0o777)
    return SignedNotebook(path, statement["subject"][0]["digest"]["sha256"],
                          len(nb["cells"]), scope, SignerInfo("key", key_id=key.key_id), signed_at)


def verify_notebook(path: Path, trust: Trust) -> Verification:
    """Check the embedded signature and name every cell that differs from what was signed."""
    path = Path(path)
    nb = read_notebook(path)

    def failed(problem: str, why: str, signer: SignerInfo | None = None) -> Verification:
        return Verification("notebook", str(path), f"{path}#metadata.securenb.signature",
                            verified=False, trust=why, signer=signer, problems=(problem,))

    envelope = nb.get("metadata", {}).get("securenb", {}).get("signature")
    if envelope is None:
        return failed(f"{path}: not signed (no metadata.securenb.signature)",
                      "not checked: no signature")
    try:
        statement, signer, why, trusted = _open(envelope, trust)
    except SignatureError as exc:
        return failed(f"{path}: {exc}", "not trusted: invalid signature")
    except _Untrusted as exc:
        return failed(f"{path}: {exc.problem}", f"untrusted: {exc.problem}", exc.signer)
    predicate = statement.get("predicate", {})
    scope = predicate.get("scope")
    if scope not in SCOPES or statement.get("predicateType") != NOTEBOOK_PREDICATE:
        return failed(f"{path}: the signed statement is not a securenb notebook signature",
                      "not trusted: unknown statement", signer)
    problems = [] if trusted else [f"valid signature, but {why.removeprefix('untrusted: ')}"]
    subject = statement["subject"][0]
    notes = []
    if subject.get("name") != path.name:
        notes.append(f"signed as {subject.get('name')!r}, now named {path.name!r} "
                     "(the content is what is checked)")
    clean = unsigned(nb)
    digest = sha256_hex(canonical_json(scoped(clean, scope)))
    if digest != subject["digest"]["sha256"]:
        problems += _differences(predicate, clean, scope) or [
            f"{path}: notebook changed outside cells and metadata (format fields)"]
    return Verification(
        "notebook", str(path), f"{path}#metadata.securenb.signature",
        verified=trusted and not problems, trust=why, signer=signer,
        signed_at=f"{predicate.get('signedAt')} (claimed by the signer)",
        algorithm=f"sha256, scope {scope}", files=1, digest=digest, problems=tuple(problems),
        notes=tuple(notes))


class _Untrusted(Exception):
    def __init__(self, problem: str, signer: SignerInfo | None) -> None:
        super().__init__(problem)
        self.problem, self.signer = problem, signer


def _open(envelope: Any, trust: Trust) -> tuple[dict[str, Any], SignerInfo, str, bool]:
    """(statement, signer, why, trusted) if a signature verifies with a key we know."""
    try:
        payload = base64.b64decode(envelope["payload"], validate=True)
        message = pae(envelope["payloadType"], payload)
        entries = [(str(s.get("keyid", "")), base64.b64decode(s["sig"], validate=True))
                   for s in envelope["signatures"]]
    except (KeyError, TypeError, AttributeError, binascii.Error) as exc:
        raise SignatureError(f"malformed signature envelope ({exc})") from None
    if envelope["payloadType"] != IN_TOTO_PAYLOAD_TYPE or not entries:
        raise SignatureError("the signature envelope holds no in-toto statement signature")
    for key_id, sig in entries:
        candidate = trust.key_by_id(key_id)
        if candidate is None:
            continue
        try:
            candidate.key.verify(sig, message)
        except SignatureError as exc:
            raise SignatureError(f"{exc}: the embedded signature or its payload "
                                 "was edited") from None
        statement = json.loads(payload)
        signer = SignerInfo("key", key_id=key_id)
        if candidate.trusted:
            return statement, signer, f"trusted: {candidate.trusted}", True
        return statement, signer, f"untrusted: {trust.untrusted(candidate)}", False
    named = ", ".join(k[:16] or "?" for k, _ in entries)
    raise _Untrusted(f"signed by key {named}, which is not in {trust.field} of {trust.source}",
                     SignerInfo("key", key_id=entries[0][0] or None))


def _differences(predicate: dict[str, Any], nb: dict[str, Any], scope: Scope) -> list[str]:
    """Name the cells added, removed or changed, and a changed metadata or kernelspec."""
    signed = predicate.get("cells") or []
    now = _cell_digests(nb, scope)
    field = "cell" if scope == "executed" else "source"
    problems = []
    if predicate.get("metadata") != _metadata_digest(nb, scope):
        problems.append("notebook metadata changed" if scope == "executed" else
                        "kernelspec changed")
    if _ids_usable(signed) and _ids_usable(now):
        return problems + _by_id(signed, now, nb["cells"], field, scope)
    matcher = difflib.SequenceMatcher(a=[c.get(field) for c in signed],
                                      b=[c.get(field) for c in now], autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            continue
        pairs = min(i2 - i1, j2 - j1) if op == "replace" else 0
        for k in range(pairs):
            problems.append(f"{_cell(nb['cells'], j1 + k)} changed"
                            f"{_what(signed[i1 + k], now[j1 + k], scope)}")
        problems += [f"{_cell(nb['cells'], j)} added" for j in range(j1 + pairs, j2)]
        problems += [_removed(i, signed[i]) for i in range(i1 + pairs, i2)]
    return problems


def _ids_usable(cells: list[dict[str, Any]]) -> bool:
    ids = [c.get("id") for c in cells]
    return all(ids) and len(set(ids)) == len(ids)


def _by_id(signed: list[dict[str, Any]], now: list[dict[str, Any]],
           cells: list[dict[str, Any]], field: str, scope: Scope) -> list[str]:
    """Cells carry ids (nbformat 4.5): align on them, so a removal is not a change."""
    before = {c["id"]: c for c in signed}
    after = {c["id"]: c for c in now}
    problems = []
    for j, cell in enumerate(now):
        old = before.get(cell["id"])
        if old is None:
            problems.append(f"{_cell(cells, j)} added")
        elif old.get(field) != cell.get(field):
            problems.append(f"{_cell(cells, j)} changed{_what(old, cell, scope)}")
    problems += [_removed(i, c) for i, c in enumerate(signed) if c["id"] not in after]
    kept = [c["id"] for c in signed if c["id"] in after]
    if kept != [c["id"] for c in now if c["id"] in before]:
        problems.append("cells reordered")
    return problems


def _removed(index: int, signed: dict[str, Any]) -> str:
    return f"cell #{index + 1} of the signed notebook removed{_id(signed.get('id'))}"


def _what(signed: dict[str, Any], now: dict[str, Any], scope: Scope) -> str:
    if scope == "executed" and signed.get("source") == now.get("source"):
        return " (outputs or cell metadata)"
    return " (source)"


def _cell(cells: list[dict[str, Any]], index: int) -> str:
    cell = cells[index]
    first = str(cell.get("source", "")).strip().splitlines()
    preview = f" {first[0][:40]!r}" if first else ""
    return f"cell #{index + 1} ({cell.get('cell_type')}{_id(cell.get('id'))}){preview}"


def _id(cell_id: object) -> str:
    return f", id {cell_id}" if cell_id else ""
