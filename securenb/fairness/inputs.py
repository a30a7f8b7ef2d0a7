"""Check and encode the inputs of a bias check: binary labels, groups, weights.

Everything is turned into small integer arrays once (labels to 0/1, each
sensitive feature to group codes) so the metrics need a single counting pass.
Bad input is refused with a message naming the array and the problem: a bias
check over NaN labels or a three-class target would yield numbers that mean
nothing, and a wrong number that passes is worse than an error.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from securenb.errors import SecurenbError

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


class FairnessInputError(SecurenbError, ValueError):
    """The labels, predictions, groups or weights cannot be assessed as given."""


@dataclass(frozen=True)
class Feature:
    """One sensitive feature: its name, group code per row and the group values."""

    name: str
    codes: IntArray
    values: tuple[str, ...]


def _array(data: Any, what: str) -> np.ndarray[Any, Any]:
    values = np.asarray(data)
    if values.ndim != 1:
        raise FairnessInputError(
            f"{what}: expected one value per row (1-D), got shape {values.shape}"
        )
    return values


def _missing(values: np.ndarray[Any, Any]) -> npt.NDArray[np.bool_] | None:
    if values.dtype.kind == "f":
        nan: npt.NDArray[np.bool_] = np.isnan(values)
        return nan
    if values.dtype.kind == "O":
        import pandas as pd  # type: ignore[import-untyped, unused-ignore]

        found: npt.NDArray[np.bool_] = np.asarray(pd.isna(values))
        return found
    return None


def binary_labels(data: Any, what: str, pos_label: Any) -> npt.NDArray[np.bool_]:
    """``data == pos_label`` after checking the labels are binary and present."""
    values = _array(data, what)
    missing = _missing(values)
    if missing is not None and missing.any():
        row = int(np.flatnonzero(missing)[0])
        raise FairnessInputError(
            f"{what}: {int(missing.sum())} missing (NaN/None) label(s), first at row {row}"
        )
    if values.dtype.kind == "b":
        labels: list[Any] = [v for v in (False, True) if (values == v).any()]
    elif values.dtype.kind in "iu" and ((values == 0) | (values == 1)).all():
        labels = [v for v in (0, 1) if (values == v).any()]
    else:
        import pandas as pd  # type: ignore[import-untyped, unused-ignore]

        labels = list(pd.unique(values))
    if len(labels) > 2:
        shown = ", ".join(repr(v) for v in sorted(labels, key=str)[:5])
        raise FairnessInputError(
            f"{what}: {len(labels)} distinct labels ({shown}{', ...' if len(labels) > 5 else ''});"
            " binary labels are needed (one positive label, one negative)"
        )
    if pos_label not in labels and not all(_is_zero(v) for v in labels):
        shown = ", ".join(repr(v) for v in labels)
        raise FairnessInputError(
            f"{what}: the positive label {pos_label!r} is not among the labels ({shown});"
            " pass pos_label"
        )
    positive: npt.NDArray[np.bool_] = values == pos_label
    return positive


def _is_zero(value: Any) -> bool:
    return isinstance(value, (bool, int, float, np.bool_, np.integer, np.floating)) and value == 0


def sample_weights(data: Any, rows: int) -> FloatArray | None:
    """Weights as float64; refused if NaN, infinite, negative or of the wrong length."""
    if data is None:
        return None
    weights = _array(data, "sample_weight")
    if weights.dtype.kind not in "biuf":
        raise FairnessInputError(f"sample_weight: numbers needed, got dtype {weights.dtype}")
    weights = weights.astype(np.float64, copy=False)
    if len(weights) != rows:
        raise FairnessInputError(f"sample_weight: {len(weights)} values for {rows} rows")
    if not np.isfinite(weights).all():
        raise FairnessInputError("sample_weight: NaN or infinite weights")
    if (weights < 0).any():
        raise FairnessInputError("sample_weight: negative weights")
    return weights


def sensitive_features(data: Any, rows: int) -> list[Feature]:
    """Each sensitive feature encoded as group codes, groups sorted like fairlearn's."""
    columns = _columns(data)
    if not columns:
        raise FairnessInputError("sensitive_features: at least one feature is needed")
    features = []
    for name, column in columns:
        feature = _factorize(name, column)
        if len(feature.codes) != rows:
            raise FairnessInputError(
                f"sensitive feature {name!r}: {len(feature.codes)} values for {rows} rows"
            )
        features.append(feature)
    return features


def _columns(data: Any) -> list[tuple[str, Any]]:
    import pandas as pd  # type: ignore[import-untyped, unused-ignore]

    if isinstance(data, pd.DataFrame):
        return [(str(c), data[c]) for c in data.columns]
    if isinstance(data, Mapping):
        return [(str(k), v) for k, v in data.items()]
    if isinstance(data, pd.Series):
        return [(str(data.name) if data.name is not None else "sensitive_feature_0", data)]
    values = np.asarray(data)
    if values.ndim == 2:
        return [(f"sensitive_feature_{i}", values[:, i]) for i in range(values.shape[1])]
    return [("sensitive_feature_0", values)]


def _factorize(name: str, column: Any) -> Feature:
    """Group codes, sorted by value: categorical codes as they are, fixed-width strings and
    numbers by sorting (no Python object per row), objects by hashing (pandas)."""
    import pandas as pd  # type: ignore[import-untyped, unused-ignore]

    uniques: Any
    if isinstance(column, pd.Series) and isinstance(column.dtype, pd.CategoricalDtype):
        column = column.cat.remove_unused_categories()
        codes = column.cat.codes.to_numpy().astype(np.int64)
        uniques = column.cat.categories
    elif isinstance(column, pd.Series):  # its own factorize: Arrow strings stay in Arrow
        try:
            codes, uniques = column.factorize(sort=True)
        except TypeError:
            codes, uniques = column.factorize(sort=False)
    else:
        values = _array(column, f"sensitive feature {name!r}")
        missing = _missing(values)
        if missing is not None and missing.any():
            codes = np.where(missing, -1, 0)
        elif values.dtype.kind in "USbiu":
            uniques, codes = np.unique(values, return_inverse=True)
        else:
            try:
                codes, uniques = pd.factorize(values, sort=True)
            except TypeError:  # values of mixed types cannot be sorted: keep first-seen order
                codes, uniques = pd.factorize(values, sort=False)
    if (codes < 0).any():
        row = int(np.flatnonzero(codes < 0)[0])
        raise FairnessInputError(f"sensitive feature {name!r}: missing value at row {row}")
    return Feature(name, codes.astype(np.int64, copy=False), tuple(str(v) for v in uniques))


def check_lengths(y_true: npt.NDArray[Any], y_pred: npt.NDArray[Any]) -> int:
    if len(y_true) != len(y_pred):
        raise FairnessInputError(
            f"y_true has {len(y_true)} rows but y_pred has {len(y_pred)}: they must match"
        )
    if len(y_true) == 0:
        raise FairnessInputError("y_true is empty: nothing to assess")
    return len(y_true)


def parse_label(text: str, y_true: Any) -> Any:
    """A label typed on a command line, as the labels' type (number, bool or text)."""
    kind = np.asarray(y_true).dtype.kind
    if kind == "b":
        return text.lower() in ("1", "true")
    if kind in "iuf":
        try:
            return int(text) if kind in "iu" else float(text)
        except ValueError:
            raise FairnessInputError(f"positive label {text!r}: the labels are numbers") from None
    return text
