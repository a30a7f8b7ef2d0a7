"""Find secrets in notebooks (cell sources and outputs) and text files, with detect-secrets.

Every detect-secrets plugin runs (keys and tokens of known services, private
keys, keyword assignments, high-entropy Base64/hex strings) with its default
filters. A notebook is read cell by cell so a finding names the cell, the part
(source, or an output and its MIME type) and the line within it. A finding
never carries the secret or any digest of it: a report may be shared.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from securenb.errors import SecurenbError, at

# binary or opaque payloads: high-entropy by nature, never where a secret is typed
_SKIPPED_MIME = ("image/", "application/pdf", "application/vnd.jupyter.widget-view+json",
                 "application/vnd.jupyter.widget-state+json")


@dataclass(frozen=True)
class Finding:
    """Where a secret is: file, cell (notebooks), part, line; and what kind it looks like."""

    path: str
    line: int
    kinds: tuple[str, ...]
    cell: int | None = None  # 0-based index of the notebook cell
    part: str = "text"  # "source", "outputs[2] text/plain", "outputs[0] stream", ...

    @property
    def in_output(self) -> bool:
        return self.part.startswith("outputs")

    def where(self) -> str:
        if self.cell is None:
            return f"{self.path}:{self.line}"
        return f"{self.path} cell {self.cell} {self.part} line {self.line}"

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "cell": self.cell, "part": self.part, "line": self.line,
                "kinds": list(self.kinds)}


def _lines(text: str, filename: str) -> Iterator[tuple[int, tuple[str, ...]]]:
    from detect_secrets.core.scan import _process_line_based_plugins
    from detect_secrets.settings import default_settings

    by_line: dict[int, set[str]] = {}
    with default_settings():
        for secret in _process_line_based_plugins(list(enumerate(text.splitlines(), 1)),
                                                  filename):
            by_line.setdefault(secret.line_number, set()).add(secret.type)
    for line in sorted(by_line):
        yield line, tuple(sorted(by_line[line]))


def scan_text(text: str, path: str, *, cell: int | None = None, part: str = "text",
              filename: str | None = None) -> list[Finding]:
    """Findings in ``text``; ``filename`` picks detect-secrets' per-file-type rules."""
    return [Finding(path, line, kinds, cell, part)
            for line, kinds in _lines(text, filename or path)]


def _text(value: Any) -> str:
    if isinstance(value, list):
        return "".join(str(v) for v in value)
    if isinstance(value, (dict, int, float, bool)) or value is None:
        return json.dumps(value, indent=1)
    return str(value)


def scan_notebook_json(nb: dict[str, Any], path: str) -> list[Finding]:
    """Findings in every cell source and output of a notebook (nbformat 4 JSON)."""
    cells = nb.get("cells")
    if not isinstance(cells, list):
        raise SecurenbError(at(path, "not a notebook (no 'cells' list)"))
    found: list[Finding] = []
    for index, cell in enumerate(cells):
        if not isinstance(cell, dict):
            continue
        suffix = ".py" if cell.get("cell_type") == "code" else ".md"
        found += scan_text(_text(cell.get("source", "")), path, cell=index, part="source",
                           filename=f"cell{suffix}")
        for number, output in enumerate(cell.get("outputs") or []):
            if not isinstance(output, dict):
                continue
            parts: list[tuple[str, Any]] = []
            if output.get("output_type") == "stream":
                parts.append(("stream", output.get("text", "")))
            elif output.get("output_type") == "error":
                parts.append(("traceback", "\n".join(map(str, output.get("traceback", [])))))
                parts.append(("error", f"{output.get('ename')}: {output.get('evalue')}"))
            for mime, value in (output.get("data") or {}).items():
                if not str(mime).startswith(_SKIPPED_MIME):
                    parts.append((str(mime), value))
            for label, value in parts:
                found += scan_text(_text(value), path, cell=index,
                                   part=f"outputs[{number}] {label}", filename="output.txt")
    return found


def scan_file(path: Path) -> list[Finding]:
    """A notebook (``.ipynb``, read as JSON) or any text file."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SecurenbError(at(path, f"cannot read ({exc.strerror})")) from None
    if path.suffix == ".ipynb":
        try:
            nb = json.loads(raw)
        except ValueError as exc:
            raise SecurenbError(at(path, f"not a notebook: invalid JSON ({exc})")) from None
        return scan_notebook_json(nb, str(path))
    if b"\x00" in raw[:8192]:
        return []  # binary: not text a person typed a secret into
    return scan_text(raw.decode("utf-8", "replace"), str(path))


def scan_paths(paths: list[Path]) -> list[Finding]:
    """Every file given, and every file under each folder given (links are not followed)."""
    found: list[Finding] = []
    for path in paths:
        if path.is_dir():
            for child in sorted(p for p in path.rglob("*")
                                if p.is_file() and not p.is_symlink()
                                and ".securenb" not in p.parts and ".git" not in p.parts):
                found += scan_file(child)
        elif path.exists():
            found += scan_file(path)
        else:
            raise SecurenbError(at(path, "no such file or folder"))
    return found


class SecretsFound(SecurenbError):
    """A file holds what looks like secrets (checked and found bad: exit 1)."""

    exit_code = 1


def refuse_if_secrets(path: Path) -> None:
    """Raise SecretsFound naming where, if ``path`` holds anything that looks like a secret.

    For callers that are about to sign or publish ``path`` (``securenb sign``).
    """
    found = scan_file(Path(path))
    if found:
        first = found[0]
        raise SecretsFound(
            f"{path}: {len(found)} possible secret(s), first at {first.where()} "
            f"({', '.join(first.kinds)}); remove them (`securenb secrets strip` clears outputs) "
            "or sign with --allow-secrets")
