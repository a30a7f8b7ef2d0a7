"""JSON schemas of the predicate types we own, validated before anything is signed.

A predicate that does not match its schema is a bug in the producer; signing
it would put a record into the store that tools downstream cannot read.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from securenb.core.attest.statement import PREDICATE_BASE
from securenb.errors import AttestationError

KINDS = ("scan", "fairness", "gate", "deployment", "dataset", "signature", "verification")


@cache
def schema_for(kind: str) -> dict[str, Any]:
    text = resources.files("securenb.schemas").joinpath(f"{kind}.v1.json").read_text()
    data: dict[str, Any] = json.loads(text)
    return data


def kind_of(predicate_type: str) -> str | None:
    """Our kind name for ``predicate_type``, or None for predicate types we do not own."""
    prefix = PREDICATE_BASE + "/"
    if predicate_type.startswith(prefix) and predicate_type.endswith("/v1"):
        kind = predicate_type[len(prefix) : -len("/v1")]
        if kind in KINDS:
            return kind
    return None


def validate_predicate(predicate_type: str, predicate: dict[str, Any]) -> None:
    """Raise AttestationError naming the field if ``predicate`` breaks its schema."""
    kind = kind_of(predicate_type)
    if kind is None:
        return
    import jsonschema  # deferred: ~1 s to import, and most commands never validate

    validator = jsonschema.Draft202012Validator(schema_for(kind))
    error = jsonschema.exceptions.best_match(validator.iter_errors(predicate))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        raise AttestationError(f"{kind} predicate invalid at {where}: {error.message}")
