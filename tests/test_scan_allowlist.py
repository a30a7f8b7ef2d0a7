"""The curated allowlists: well-formed, free of known-dangerous names, and real."""

from __future__ import annotations

import importlib
import importlib.util

import pytest

from securenb.scan.allowlist import CHECKED, Allowlist, is_dotted_identifier
from securenb.scan.allowlists import CURATED


def test_entries_are_exact_names() -> None:
    for entry in CURATED | set(CHECKED):
        module, sep, name = entry.partition(":")
        assert sep and is_dotted_identifier(module) and is_dotted_identifier(name), entry
        assert "*" not in entry


REVIEWED = {  # in a "dangerous" module, harmless themselves
    "joblib.numpy_pickle:NumpyArrayWrapper",
    "types:SimpleNamespace",
    "torch.serialization:_get_layout",
    # TorchScript constants: list builders and a type tag, each returns its argument
    "torch.jit._pickle:build_boollist",
    "torch.jit._pickle:build_doublelist",
    "torch.jit._pickle:build_intlist",
    "torch.jit._pickle:build_tensorlist",
    "torch.jit._pickle:restore_type_tag",
}


def test_no_known_dangerous_entry() -> None:
    dangerous = [
        e
        for e in CURATED
        if Allowlist.is_dangerous(*e.split(":"))
        and not e.startswith(("builtins:", "collections:", "copyreg:"))
        and e not in REVIEWED
    ]
    assert dangerous == []
    for name in (
        "builtins:eval",
        "builtins:getattr",
        "os:system",
        "torch.serialization:load",
        "numpy:load",
        "pandas:read_pickle",
        "functools:partial",
        "pandas:HDFStore",
    ):
        assert name not in CURATED


@pytest.mark.parametrize(
    "package", ["torch", "numpy", "pandas", "sklearn", "joblib", "xgboost", "lightgbm"]
)
def test_entries_resolve_in_installed_libraries(package: str) -> None:
    """Catches typos: every entry of an installed package names an existing object."""
    if importlib.util.find_spec(package) is None:
        pytest.skip(f"{package} not installed")
    missing = []
    for entry in sorted(CURATED):
        module, _, name = entry.partition(":")
        if module.split(".")[0] != package:
            continue
        try:
            obj = importlib.import_module(module)
            for part in name.split("."):
                obj = getattr(obj, part)
        except (ImportError, AttributeError):
            missing.append(entry)
    # Entries kept for older library versions (pandas 1.x Int64Index, numpy.core, ...)
    # may not exist in the installed one; they must stay a small minority.
    assert len(missing) < 0.25 * sum(
        1 for e in CURATED if e.split(".")[0].split(":")[0] == package
    ), missing
