"""Group metrics and disparities computed from confusion counts, for any number of groups.

Every metric fairlearn computes per group with one function call per group and
metric is a ratio of cells of the group's (weighted) confusion matrix. Counting
the cells of every group in one ``np.bincount`` over ``group * 4 + 2 * y_true +
y_pred`` gives all of them at once; bootstrap replicates are the same arrays
with a leading axis. A ratio whose denominator is 0 is NaN here, and is
reported as undefined with its reason (fairlearn reports 0 for some of them).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

# name -> (numerator cells, denominator cells, reason when the denominator is 0);
# cells index the flattened 2x2 matrix [y_true][y_pred]: 0 TN, 1 FP, 2 FN, 3 TP.
RATES: dict[str, tuple[tuple[int, ...], tuple[int, ...], str]] = {
    "selection_rate": ((1, 3), (0, 1, 2, 3), "the group's sample weights sum to 0"),
    "accuracy": ((0, 3), (0, 1, 2, 3), "the group's sample weights sum to 0"),
    "precision": ((3,), (1, 3), "no predicted positives (y_pred = positive) in the group"),
    "recall": ((3,), (2, 3), "no actual positives (y_true = positive) in the group"),
    "false_positive_rate": ((1,), (0, 1), "no actual negatives (y_true = negative) in the group"),
    "false_negative_rate": ((2,), (2, 3), "no actual positives (y_true = positive) in the group"),
}
METRICS = (*RATES, "count")

# name -> (group metrics it compares, "difference" (max - min) or "ratio" (min / max))
DISPARITIES: dict[str, tuple[tuple[str, ...], str]] = {
    "demographic_parity_difference": (("selection_rate",), "difference"),
    "demographic_parity_ratio": (("selection_rate",), "ratio"),
    "equalized_odds_difference": (("recall", "false_positive_rate"), "difference"),
    "equalized_odds_ratio": (("recall", "false_positive_rate"), "ratio"),
    "equal_opportunity_difference": (("recall",), "difference"),
    "equal_opportunity_ratio": (("recall",), "ratio"),
}
LOWER_IS_BETTER = {name for name, (_, kind) in DISPARITIES.items() if kind == "difference"}


def cells(codes: npt.NDArray[np.int64], positive: npt.NDArray[np.bool_],
          predicted: npt.NDArray[np.bool_]) -> npt.NDArray[np.int64]:
    """``codes * 4 + 2 * positive + predicted``, computed in place in ``codes`` (no copies)."""
    codes *= 4
    codes += positive
    codes += positive
    codes += predicted
    return codes


def confusion_counts(cell: npt.NDArray[np.int64], groups: int,
                     weights: FloatArray | None) -> tuple[FloatArray, FloatArray]:
    """(groups, 4) weighted cell totals [TN, FP, FN, TP], and rows per group: one pass."""
    counts = np.bincount(cell, weights=weights, minlength=groups * 4).astype(np.float64)
    if weights is None:
        rows = counts.reshape(groups, 4).sum(-1)
    else:
        rows = np.bincount(cell, minlength=groups * 4).reshape(groups, 4).sum(-1).astype(float)
    return counts.reshape(groups, 4), rows


def rates(counts: FloatArray) -> dict[str, FloatArray]:
    """Each rate of ``RATES`` for counts of shape (..., groups, 4); NaN where undefined."""
    out = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        for name, (num, den, _) in RATES.items():
            out[name] = counts[..., list(num)].sum(-1) / counts[..., list(den)].sum(-1)
    return out


def disparities(values: dict[str, FloatArray]) -> dict[str, FloatArray]:
    """Each disparity over the last (group) axis; NaN if a group's metric is undefined.

    Equalized odds takes the worst of its two parts: the larger difference, the
    smaller ratio (fairlearn's ``agg="worst_case"``).
    """
    out: dict[str, FloatArray] = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        for name, (metrics, kind) in DISPARITIES.items():
            parts = []
            for metric in metrics:
                high, low = values[metric].max(-1), values[metric].min(-1)
                parts.append(high - low if kind == "difference" else low / high)
            stacked = np.stack(parts)
            worst = stacked.max(0) if kind == "difference" else stacked.min(0)
            out[name] = np.where(np.isnan(stacked).any(0), np.nan, worst)
    return out


def disparity_reason(name: str, groups: tuple[str, ...], values: dict[str, Any],
                     reasons: dict[str, list[str | None]]) -> str | None:
    """Why disparity ``name`` is undefined for these groups (None if it is defined)."""
    if len(groups) < 2:
        return f"only one group ({groups[0]}): nothing to compare" if groups else "no groups"
    metrics, kind = DISPARITIES[name]
    for metric in metrics:
        for group, reason in zip(groups, reasons[metric], strict=True):
            if reason is not None:
                return f"{metric} is undefined for {group}: {reason}"
        if kind == "ratio" and float(np.max(values[metric])) == 0:
            return f"{metric} is 0 in every group: a ratio of 0 to 0"
    return None
