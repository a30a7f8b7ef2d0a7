"""JSON schemas of the predicate types we own, validated before anything is signed.

A predicate that does not match its schema is a bug in the producer; signing
it would put a record into the store that tools downstream cannot read.

The schemas (draft 2020-12, ``securenb/schemas/``) are compiled once per
process with ``fastjsonschema``. Not ``jsonschema``: importing it imports its
optional format checkers, and the ``rfc3987-syntax`` one (installed by
``jupyter_server``'s ``jsonschema[format-nongpl]``) compiles a grammar, ~0.8 s
and ~20 MB of RSS in every command that signs anything (docs/signing.md,
Memory). Like ``jsonschema``'s validator as used before, formats are
annotations (not asserted) and the predicate is never modified (no defaults
filled in). Our schemas use only keywords that mean the same in draft 2019-09,
which fastjsonschema implements, and in 2020-12.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from importlib import resources
from typing import Any

from securenb.core.attest.statement import PREDICATE_BASE
from securenb.errors import AttestationError

KINDS = ("scan", "fairness", "gate", "deployment", "dataset", "signature", "verification",
         "vulnerabilities", "robustness")


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


def _no_remote(uri: str) -> Any:
    raise AttestationError(f"schema reference {uri!r} is not local; our schemas are self-contained")


@cache
def _validator(kind: str) -> Callable[[Any], Any]:
    import fastjsonschema  # deferred: only commands that sign compile a schema

    return fastjsonschema.compile(
        schema_for(kind),
        handlers={"http": _no_remote, "https": _no_remote},  # never fetch a $ref
        use_default=False,  # validate only: never fill defaults into a predicate we sign
        use_formats=False,  # formats are annotations, as in jsonschema without a FormatChecker
    )


def validate_predicate(predicate_type: str, predicate: dict[str, Any]) -> None:
    """Raise AttestationError naming the field if ``predicate`` breaks its schema."""
    kind = kind_of(predicate_type)
    if kind is None:
        return
    from fastjsonschema import JsonSchemaValueException

    try:
        _validator(kind)(predicate)
    except JsonSchemaValueException as exc:
        where = "/".join(str(p) for p in (exc.path or [])[1:]) or "(root)"
        message = exc.message
        if exc.name and message.startswith(exc.name + " "):
            message = message[len(exc.name) + 1 :]  # "data.verdict must be ..." -> "must be ..."
        raise AttestationError(f"{kind} predicate invalid at {where}: {message}") from None
