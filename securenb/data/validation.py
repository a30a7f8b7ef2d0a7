"""Check decrypted data against the manifest's schema; infer a schema from data.

Errors name the dataset, the column and the rule, with how many rows break it
and the first one, so a failing pipeline says what to fix.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd  # type: ignore[import-untyped, unused-ignore]
from pandas.api import types as ptypes  # type: ignore[import-untyped, unused-ignore]

from securenb.data.errors import DataValidationError
from securenb.data.manifest import ArraySpec, Column, ColumnType, Schema
from securenb.errors import at


def _broken(name: str, column: str, rule: str, bad: Any) -> DataValidationError:
    rows = list(bad.index[:1]) if hasattr(bad, "index") else []
    where = f" (first at row {rows[0]!r})" if rows else ""
    return DataValidationError(
        at(name, f"column {column!r}: rule {rule} broken by {len(bad)} row(s){where}")
    )


def _integral(values: Any) -> bool:
    return bool(ptypes.is_float_dtype(values) and (values.dropna() % 1 == 0).all())


def _type_ok(series: Any, kind: ColumnType) -> bool:
    if kind == "int":
        return bool(ptypes.is_integer_dtype(series)) or _integral(series)
    if kind == "float":
        return bool(ptypes.is_float_dtype(series) or ptypes.is_integer_dtype(series))
    if kind == "bool":
        return bool(ptypes.is_bool_dtype(series)) or bool(
            series.dropna().map(lambda v: isinstance(v, bool | np.bool_)).all()
        )
    if kind == "datetime":
        return bool(ptypes.is_datetime64_any_dtype(series))
    return bool(ptypes.is_string_dtype(series) or ptypes.is_object_dtype(series))


def _check_column(series: Any, column: Column, name: str) -> None:
    if not _type_ok(series, column.type):
        raise DataValidationError(
            at(name, f"column {column.name!r}: rule type={column.type} broken: "
                     f"its values are {series.dtype}")
        )
    nulls = series[series.isna()]
    if not column.nullable and len(nulls):
        raise _broken(name, column.name, "nullable=false", nulls)
    values = series.dropna()
    if column.min is not None and len(bad := values[values < column.min]):
        raise _broken(name, column.name, f"min={column.min}", bad)
    if column.max is not None and len(bad := values[values > column.max]):
        raise _broken(name, column.name, f"max={column.max}", bad)
    if column.allowed is not None and len(bad := values[~values.isin(list(column.allowed))]):
        raise _broken(name, column.name, f"allowed={list(column.allowed)}", bad)


def check_frame(frame: Any, schema: Schema, name: str) -> None:
    """Raise DataValidationError at the first column that breaks a rule."""
    for column in schema.columns:
        if column.name not in frame.columns:
            raise DataValidationError(at(name, f"column {column.name!r}: missing (rule: declared)"))
        _check_column(frame[column.name], column, name)
    if not schema.allow_extra_columns:
        declared = {c.name for c in schema.columns}
        extra = [str(c) for c in frame.columns if c not in declared]
        if extra:
            raise DataValidationError(
                at(name, f"column {extra[0]!r}: not in the schema "
                         "(rule: allow_extra_columns=false)")
            )


def _shape_ok(want: tuple[int | None, ...], got: tuple[int, ...]) -> bool:
    if len(want) != len(got):
        return False
    return all(w is None or w == g for w, g in zip(want, got, strict=True))


def check_layout(
    dtype: np.dtype[Any], shape: tuple[int, ...], spec: ArraySpec, name: str
) -> None:
    """Dtype and shape rules: checkable from a .npy header, before any data is read."""
    if dtype != np.dtype(spec.dtype):
        raise DataValidationError(
            at(name, f"array: rule dtype={spec.dtype} broken: its dtype is {dtype}")
        )
    if spec.shape is not None and not _shape_ok(spec.shape, shape):
        raise DataValidationError(
            at(name, f"array: rule shape={list(spec.shape)} broken: its shape is {list(shape)}")
        )


def check_values(array: np.ndarray[Any, Any], spec: ArraySpec, name: str) -> None:
    """NaN and range rules over the values of ``array`` (all of it, or one row)."""
    if not array.size or array.dtype.kind not in "biuf":
        return
    if array.dtype.kind == "f" and not spec.allow_nan and (nans := int(np.isnan(array).sum())):
        raise DataValidationError(
            at(name, f"array: rule allow_nan=false broken by {nans} value(s)")
        )
    if spec.min is not None and (low := int((array < spec.min).sum())):
        raise DataValidationError(at(name, f"array: rule min={spec.min} broken by {low} value(s)"))
    if spec.max is not None and (high := int((array > spec.max).sum())):
        raise DataValidationError(at(name, f"array: rule max={spec.max} broken by {high} value(s)"))


def check_array(array: np.ndarray[Any, Any], spec: ArraySpec, name: str) -> None:
    """Raise DataValidationError unless dtype, shape, NaN and range rules hold."""
    check_layout(array.dtype, array.shape, spec, name)
    check_values(array, spec, name)


def _column_type(series: Any) -> ColumnType:
    if ptypes.is_bool_dtype(series):
        return "bool"
    if ptypes.is_integer_dtype(series):
        return "int"
    if ptypes.is_float_dtype(series):
        return "float"
    if ptypes.is_datetime64_any_dtype(series):
        return "datetime"
    return "string"


def _scalar(value: Any) -> int | float:
    plain = value.item() if isinstance(value, np.generic) else value
    return plain if isinstance(plain, int) else float(plain)


def _array_range(data: np.ndarray[Any, Any]) -> tuple[int | float | None, int | float | None]:
    if data.dtype.kind not in "iuf":
        return None, None
    finite = data[np.isfinite(data)] if data.dtype.kind == "f" else data
    if not finite.size:
        return None, None
    return _scalar(finite.min()), _scalar(finite.max())


def infer_schema(data: Any) -> Schema:
    """A schema that ``data`` (a DataFrame or an ndarray) satisfies: types, nulls, ranges."""
    if isinstance(data, np.ndarray):
        low, high = _array_range(data)
        return Schema(array=ArraySpec(
            dtype=str(data.dtype),
            shape=(None, *data.shape[1:]) if data.ndim else (),
            min=low,
            max=high,
            allow_nan=bool(data.dtype.kind == "f" and np.isnan(data).any()),
        ))
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"infer_schema takes a DataFrame or an ndarray, not {type(data).__name__}")
    columns = []
    for label in data.columns:
        series = data[label]
        kind = _column_type(series)
        values = series.dropna()
        ranged = kind in ("int", "float") and len(values) > 0
        columns.append(Column(
            name=str(label),
            type=kind,
            nullable=bool(series.isna().any()),
            min=_scalar(values.min()) if ranged else None,
            max=_scalar(values.max()) if ranged else None,
        ))
    return Schema(columns=tuple(columns))


def check(data: Any, schema: Schema, name: str) -> None:
    """Validate a DataFrame or an ndarray (or a dict of arrays from an .npz)."""
    if isinstance(data, dict):
        for member, array in data.items():
            check(array, schema, f"{name}[{member}]")
    elif isinstance(data, np.ndarray):
        if schema.array is not None:
            check_array(data, schema.array, name)
    elif schema.columns:
        check_frame(data, schema, name)
