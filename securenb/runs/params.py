"""Run parameters as typed JSON that round-trips exactly.

Parsed as papermill parses them (``-p`` by papermill's own type rules, ``-r``
raw strings, ``-y`` YAML, ``-f`` YAML files), and recorded as JSON *text*:
RFC 8785 writes the float ``1.0`` as ``1``, so the canonical form of a
statement cannot carry its type; the text can. Integers past 2**53 are refused:
no RFC 8785 signature (the notebook's included) can hold them.
"""

from __future__ import annotations

import json
import math
import unicodedata
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from securenb.errors import SecurenbError

MAX_INT = 2**53 - 1  # I-JSON (RFC 7493): what RFC 8785 canonical JSON accepts


def parse(values: Iterable[tuple[str, str]] = (), raw: Iterable[tuple[str, str]] = (),
          yaml_texts: Iterable[str] = (), files: Iterable[Path] = (),
          json_texts: Iterable[str] = ()) -> dict[str, Any]:
    """Parameters in papermill's order of precedence (files, YAML, raw, then ``-p``);
    JSON objects (exact types, ours) come before all of them."""
    import yaml  # type: ignore[import-untyped]
    from papermill.cli import _resolve_type
    from papermill.iorw import NoDatesSafeLoader

    out: dict[str, Any] = {}
    for text in json_texts:
        if text.startswith("@"):  # @FILE: the JSON text of a file (a Job pod's ConfigMap)
            try:
                text = Path(text[1:]).read_text()
            except OSError as exc:
                raise SecurenbError(f"--parameters-json {text}: cannot read it "
                                    f"({exc.strerror})") from None
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise SecurenbError(f"--parameters-json: invalid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise SecurenbError("--parameters-json: a JSON object of names to values is needed")
        out.update(data)
    for path in files:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise SecurenbError(f"{path}: cannot read the parameters file ({exc.strerror})"
                                ) from None
        out.update(_yaml_mapping(text, str(path), yaml, NoDatesSafeLoader))
    for text in yaml_texts:
        out.update(_yaml_mapping(text, "-y", yaml, NoDatesSafeLoader))
    out.update(dict(raw))
    out.update({name: _resolve_type(value) for name, value in values})
    check(out)
    return out


def _yaml_mapping(text: str, where: str, yaml: Any, loader: Any) -> dict[str, Any]:
    try:
        data = yaml.load(text, Loader=loader) or {}
    except yaml.YAMLError as exc:
        raise SecurenbError(f"{where}: invalid YAML ({exc})") from None
    except RecursionError:
        raise SecurenbError(f"{where}: YAML nested too deeply") from None
    if not isinstance(data, dict):
        raise SecurenbError(f"{where}: parameters must be a mapping of names to values")
    return data


def check(params: dict[str, Any]) -> None:
    """Refuse what JSON cannot carry (NaN, infinities, bytes, dates, non-string keys), and
    names that are not the variable the kernel gets (Python NFKC-folds identifiers)."""

    def walk(value: Any, where: str) -> None:
        if isinstance(value, float) and not math.isfinite(value):
            raise SecurenbError(f"parameter {where}: {value} is not a JSON number")
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INT:
            raise SecurenbError(f"parameter {where}: {value} is past 2**53, the largest integer "
                                "a signed notebook (RFC 8785 JSON) holds exactly; pass it as a "
                                "string (-r)")
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):
                    raise SecurenbError(f"parameter {where}: key {key!r} is not a string")
                walk(item, f"{where}.{key}")
        elif isinstance(value, list):
            for i, item in enumerate(value):
                walk(item, f"{where}[{i}]")
        elif not (value is None or isinstance(value, bool | int | float | str)):
            raise SecurenbError(f"parameter {where}: a {type(value).__name__} is not JSON")

    for name, value in params.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise SecurenbError(f"parameter {name!r}: not a Python identifier")
        if unicodedata.normalize("NFKC", name) != name:
            raise SecurenbError(f"parameter {name!r}: Python reads this name as "
                                f"{unicodedata.normalize('NFKC', name)!r}; use that name")
        walk(value, name)


def to_text(params: dict[str, Any]) -> str:
    """The exact JSON text recorded in the provenance, in the order given."""
    check(params)
    return json.dumps(params, ensure_ascii=False, allow_nan=False)  # in order: papermill injects


def from_text(text: str) -> dict[str, Any]:
    value = json.loads(text)
    if not isinstance(value, dict):
        raise SecurenbError("recorded parameters are not a JSON object")
    return value


def same(a: Any, b: Any) -> bool:
    """Equal with the same JSON types: ``1`` is not ``1.0`` and ``True`` is not ``1``."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)
