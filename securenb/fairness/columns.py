"""Read the labels, predictions, sensitive features and weights of a bias check from a file.

Only the named columns are read (CSV, TSV, Parquet, JSON lines), by pandas; a
missing column is an error that lists the ones there are.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from securenb.errors import SecurenbError, at
from securenb.fairness.inputs import FairnessInputError

_READERS = {".csv": "csv", ".tsv": "tsv", ".parquet": "parquet", ".pq": "parquet",
            ".jsonl": "jsonl", ".ndjson": "jsonl"}


@dataclass(frozen=True)
class Columns:
    """The arrays ``assess`` needs, as read from one file."""

    y_true: Any
    y_pred: Any
    sensitive: Any  # a DataFrame, one column per sensitive feature
    weight: Any | None


def read_columns(path: Path, label: str, prediction: str, sensitive: list[str],
                 weight: str | None = None) -> Columns:
    """The named columns of ``path``; FairnessInputError if one is missing."""
    import pandas as pd  # type: ignore[import-untyped, unused-ignore]

    kind = _READERS.get(path.suffix.lower())
    if kind is None:
        raise SecurenbError(at(path, f"unknown data format {path.suffix!r}; "
                                     f"use one of {', '.join(sorted(_READERS))}"))
    wanted = list(dict.fromkeys([label, prediction, *sensitive, *([weight] if weight else [])]))
    try:
        if kind == "parquet":
            import pyarrow.parquet as pq  # type: ignore[import-untyped, unused-ignore]

            present = pq.ParquetFile(path).schema_arrow.names
            _check(path, wanted, present)
            frame = pd.read_parquet(path, columns=wanted)
        elif kind == "jsonl":
            frame = pd.read_json(path, lines=True)
            _check(path, wanted, list(frame.columns))
        else:
            sep = "\t" if kind == "tsv" else ","
            present = list(pd.read_csv(path, sep=sep, nrows=0).columns)
            _check(path, wanted, present)
            frame = pd.read_csv(path, sep=sep, usecols=wanted)
    except (OSError, ValueError) as exc:
        if isinstance(exc, FairnessInputError):
            raise
        raise SecurenbError(at(path, f"cannot read ({exc})")) from None
    return Columns(frame[label].to_numpy(), frame[prediction].to_numpy(), frame[sensitive],
                   frame[weight].to_numpy() if weight else None)


def _check(path: Path, wanted: list[str], present: list[str]) -> None:
    missing = [c for c in wanted if c not in present]
    if missing:
        raise FairnessInputError(at(path, f"no column {missing[0]!r}; columns: "
                                          f"{', '.join(map(str, present))}"))
