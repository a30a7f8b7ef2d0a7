"""``assess``: the bias check, in one counting pass over the rows.

Group codes of every sensitive feature are combined into one intersection
code; one ``np.bincount`` gives the weighted confusion cells of every
intersection group, and the groups of each single feature are sums of those.
Bootstrap replicates resample rows: without weights the metrics depend only on
the cell totals, so a multinomial draw over the cells is exactly a row
resample and costs nothing per row.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from securenb.fairness.inputs import (
    FairnessInputError,
    Feature,
    binary_labels,
    check_lengths,
    sample_weights,
    sensitive_features,
)
from securenb.fairness.metrics import (
    DISPARITIES,
    RATES,
    FloatArray,
    cells,
    confusion_counts,
    disparities,
    disparity_reason,
    rates,
)
from securenb.fairness.report import Check, CheckStatus, FairnessReport, Group, Value, View

_DENSE_GROUPS = 1 << 16  # above this many feature combinations, compact the codes first


def assess(
    y_true: Any,
    y_pred: Any,
    sensitive_features: Any,
    *,
    sample_weight: Any = None,
    pos_label: Any = 1,
    thresholds: Mapping[str, float] | Any | None = None,
    bootstrap: int = 0,
    confidence: float = 0.95,
    random_state: int | None = None,
) -> FairnessReport:
    """Group metrics and disparities of binary predictions, checked against ``thresholds``.

    ``sensitive_features``: one column (array, Series), several (DataFrame, dict
    of name to column, 2-D array). ``thresholds``: a ``FairnessPolicy`` or a
    mapping of ``max_<disparity>`` / ``min_<disparity>`` bounds (default: the
    policy's defaults). ``bootstrap``: number of replicates for percentile
    confidence intervals at ``confidence`` (0: none).
    """
    if bootstrap < 0 or not 0 < confidence < 1:
        raise FairnessInputError("bootstrap must be >= 0 and confidence in (0, 1)")
    truth = np.asarray(y_true)
    pred = np.asarray(y_pred)
    rows = check_lengths(truth, pred)
    positive = binary_labels(truth, "y_true", pos_label)
    predicted = binary_labels(pred, "y_pred", pos_label)
    weights = sample_weights(sample_weight, rows)
    features = _sensitive(sensitive_features, rows)
    bounds = _bounds(thresholds)

    codes, combos = _intersection(features)
    features = [Feature(f.name, codes[:0], f.values) for f in features]  # free their codes
    cell = cells(codes, positive, predicted)
    counts, row_counts = confusion_counts(cell, len(combos[0]), weights)
    views = _views(features, combos)
    replicates = None
    if bootstrap:
        rng = np.random.default_rng(random_state)
        replicates = _bootstrap(counts, cell, weights, bootstrap, rng)
    quantiles = ((1 - confidence) / 2 * 100, (1 + confidence) / 2 * 100)

    built = []
    for name, names, members in views:
        view_counts = members.T @ counts
        view_rows = row_counts @ members
        reps = members.T @ replicates if replicates is not None else None
        built.append(_view(name, names, view_counts, view_rows, reps, quantiles))
    overall_counts = counts.sum(0, keepdims=True)
    overall_reps = replicates.sum(1, keepdims=True) if replicates is not None else None
    overall = _view("overall", ("overall",), overall_counts, np.array([float(rows)]),
                    overall_reps, quantiles).groups[0].metrics
    checks = tuple(_checks(bounds, built))
    return FairnessReport(
        features=tuple(f.name for f in features), rows=rows, weighted=weights is not None,
        pos_label=pos_label, overall=overall, views=tuple(built), checks=checks,
        bootstrap=bootstrap, confidence=confidence if bootstrap else None,
        thresholds=dict(bounds),
    )


def _sensitive(data: Any, rows: int) -> list[Feature]:
    features = sensitive_features(data, rows)
    names = [f.name for f in features]
    if len(set(names)) != len(names):
        raise FairnessInputError(f"sensitive_features: duplicate feature names {names}")
    return features


def _bounds(thresholds: Mapping[str, float] | Any | None) -> dict[str, float]:
    """Policy bounds as {key: value}; every key must name a disparity we compute."""
    if thresholds is None:
        from securenb.core.policy import FairnessPolicy

        thresholds = FairnessPolicy()
    if not isinstance(thresholds, Mapping):
        thresholds = thresholds.model_dump()
    bounds = {}
    for key, value in thresholds.items():
        prefix, _, disparity = key.partition("_")
        if prefix not in ("max", "min") or disparity not in DISPARITIES:
            raise FairnessInputError(
                f"threshold {key!r}: expected max_<disparity> or min_<disparity>, with "
                f"<disparity> one of {', '.join(DISPARITIES)}"
            )
        bounds[key] = float(value)
    return bounds


def _intersection(features: list[Feature]) -> tuple[npt.NDArray[np.int64], list[npt.NDArray[Any]]]:
    """One code per row for the combination of all features, and each group's feature codes.

    Only combinations that occur are groups (fairlearn leaves the others out of
    its disparities too).
    """
    sizes = [len(f.values) for f in features]
    if len(features) == 1:
        return features[0].codes.copy(), [np.arange(sizes[0])]
    combined = features[0].codes.copy()
    for feature, size in zip(features[1:], sizes[1:], strict=True):
        combined *= size
        combined += feature.codes
    total = int(np.prod(sizes, dtype=object))
    if total <= _DENSE_GROUPS:
        present = np.flatnonzero(np.bincount(combined, minlength=total))
        if len(present) < total:
            lookup = np.zeros(total, dtype=np.int64)
            lookup[present] = np.arange(len(present))
            combined = lookup[combined]
    else:
        present, combined = np.unique(combined, return_inverse=True)
    return combined, list(np.unravel_index(present, sizes))


def _views(features: list[Feature], combos: list[npt.NDArray[Any]]
           ) -> list[tuple[str, tuple[str, ...], FloatArray]]:
    """(view name, group names, membership matrix groups x view groups) per view."""
    groups = len(combos[0])
    out = []
    for feature, combo in zip(features, combos, strict=True):
        members = np.zeros((groups, len(feature.values)))
        members[np.arange(groups), combo] = 1.0
        out.append((feature.name, tuple(f"{feature.name}={v}" for v in feature.values), members))
    if len(features) > 1:
        names = tuple(" & ".join(f"{f.name}={f.values[c[i]]}" for f, c in zip(features, combos,
                                                                               strict=True))
                      for i in range(groups))
        out.append((" & ".join(f.name for f in features), names, np.eye(groups)))
    return out


def _bootstrap(counts: FloatArray, cell: npt.NDArray[np.int64], weights: FloatArray | None,
               replicates: int, rng: np.random.Generator) -> FloatArray:
    """(replicates, groups, 4) cell totals of row resamples."""
    groups, rows = counts.shape[0], len(cell)
    if weights is None:
        draws = rng.multinomial(rows, counts.ravel() / rows, size=replicates)
        return draws.astype(np.float64).reshape(replicates, groups, 4)
    out = np.empty((replicates, groups, 4))
    for b in range(replicates):
        pick = rng.integers(0, rows, rows)
        out[b] = np.bincount(cell[pick], weights=weights[pick], minlength=groups * 4
                             ).reshape(groups, 4)
    return out


def _view(name: str, groups: tuple[str, ...], counts: FloatArray, row_counts: FloatArray,
          replicates: FloatArray | None, quantiles: tuple[float, float]) -> View:
    values = rates(counts)
    reasons: dict[str, list[str | None]] = {
        m: [RATES[m][2] if np.isnan(x) else None for x in values[m]] for m in RATES
    }
    spread = disparities(values)
    boot = rates(replicates) if replicates is not None else None
    boot_spread = disparities(boot) if boot is not None else None
    built = []
    for i, group in enumerate(groups):
        metrics = {m: _value(values[m][i], reasons[m][i],
                             boot[m][:, i] if boot is not None else None, quantiles)
                   for m in RATES}
        metrics["count"] = Value(float(row_counts[i]))
        built.append(Group(group, metrics))
    found = {}
    for name_ in DISPARITIES:
        reason = disparity_reason(name_, groups, values, reasons)
        value = float(spread[name_]) if reason is None else float("nan")
        found[name_] = _value(value, reason, boot_spread[name_] if boot_spread else None,
                              quantiles)
    return View(name, tuple(built), found)


def _value(value: float, reason: str | None, replicates: FloatArray | None,
           quantiles: tuple[float, float]) -> Value:
    if reason is not None or np.isnan(value):
        return Value(None, reason or "undefined")
    interval = None
    if replicates is not None:
        defined = replicates[~np.isnan(replicates)]
        if len(defined):
            low, high = np.percentile(defined, quantiles)
            interval = (float(low), float(high))
    return Value(float(value), None, interval)


def _checks(bounds: dict[str, float], views: list[View]) -> list[Check]:
    out = []
    for key, bound in bounds.items():
        disparity = key.partition("_")[2]
        for view in views:
            value = view.disparities[disparity]
            status: CheckStatus
            if value.value is None:
                status = "undefined"
            elif key.startswith("max_"):
                status = "pass" if value.value <= bound else "fail"
            else:
                status = "pass" if value.value >= bound else "fail"
            out.append(Check(key, disparity, bound, view.name, value, status))
    return out
