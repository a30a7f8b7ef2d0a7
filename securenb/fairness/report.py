"""What a bias check found: per-group metrics, disparities, and the policy checks on them.

A value is a number or undefined with the reason; an undefined disparity that
policy bounds is never a pass (the check is "undefined", and the report does
not pass).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from securenb.fairness.metrics import DISPARITIES, METRICS

CheckStatus = Literal["pass", "fail", "undefined"]


@dataclass(frozen=True)
class Value:
    """A metric: its value, or None with the reason it is undefined; a CI when asked."""

    value: float | None
    reason: str | None = None
    interval: tuple[float, float] | None = None

    def text(self, digits: int = 3, interval: bool = True) -> str:
        if self.value is None:
            return "undefined"
        shown = f"{self.value:.{digits}f}"
        if interval and self.interval is not None:
            shown += f" [{self.interval[0]:.{digits}f}, {self.interval[1]:.{digits}f}]"
        return shown


@dataclass(frozen=True)
class Group:
    """One group of a view (``sex=F``, or ``sex=F & race=b`` for an intersection)."""

    name: str
    metrics: dict[str, Value]


@dataclass(frozen=True)
class View:
    """The groups of one sensitive feature, or of the intersection of all of them."""

    name: str
    groups: tuple[Group, ...]
    disparities: dict[str, Value]


@dataclass(frozen=True)
class Check:
    """A policy bound (``max_demographic_parity_difference = 0.1``) applied to one view."""

    key: str
    disparity: str
    bound: float
    view: str
    value: Value
    status: CheckStatus

    def describe(self) -> str:
        op = "<=" if self.key.startswith("max_") else ">="
        if self.value.value is None:
            return (f"{self.disparity} over {self.view} is undefined ({self.value.reason}); "
                    f"policy {self.key} = {self.bound} cannot be checked")
        verb = "within" if self.status == "pass" else "breaks"
        return (f"{self.disparity} over {self.view} = {self.value.value:.4f} {verb} "
                f"policy {self.key} ({op} {self.bound})")


@dataclass(frozen=True)
class FairnessReport:
    """The result of ``securenb.fairness.assess``."""

    features: tuple[str, ...]
    rows: int
    weighted: bool
    pos_label: Any
    overall: dict[str, Value]
    views: tuple[View, ...]
    checks: tuple[Check, ...]
    bootstrap: int = 0
    confidence: float | None = None
    thresholds: dict[str, float] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """True only if every bound was checked and held."""
        return all(c.status == "pass" for c in self.checks)

    @property
    def status(self) -> CheckStatus:
        if any(c.status == "fail" for c in self.checks):
            return "fail"
        return "undefined" if any(c.status == "undefined" for c in self.checks) else "pass"

    @property
    def failures(self) -> list[str]:
        return [c.describe() for c in self.checks if c.status != "pass"]

    def view(self, name: str | None = None) -> View:
        """The named view; by default the intersection of all features (the last view)."""
        if name is None:
            return self.views[-1]
        for view in self.views:
            if view.name == name:
                return view
        raise KeyError(f"no view {name!r}; views: {', '.join(v.name for v in self.views)}")

    def by_group(self, view: str | None = None) -> Any:
        """A pandas DataFrame of the group metrics of ``view`` (NaN where undefined)."""
        import pandas as pd  # type: ignore[import-untyped, unused-ignore]

        chosen = self.view(view)
        return pd.DataFrame(
            {g.name: {m: _nan(v) for m, v in g.metrics.items()} for g in chosen.groups}
        ).T

    def to_predicate(self, model: str | None = None) -> dict[str, Any]:
        """The ``fairness/v1`` predicate (securenb/schemas/fairness.v1.json)."""
        undefined: dict[str, str] = {}
        intervals: dict[str, list[float]] = {}

        def put(path: str, value: Value) -> float | None:
            if value.reason is not None:
                undefined[path] = value.reason
            if value.interval is not None:
                intervals[path] = list(value.interval)
            return value.value

        overall = {m: put(f"overall/{m}", v) for m, v in self.overall.items()}
        by_group: dict[str, dict[str, float | None]] = {}
        by_view: dict[str, dict[str, float | None]] = {}
        for view in self.views:
            for group in view.groups:
                by_group[group.name] = {
                    m: put(f"byGroup/{group.name}/{m}", v) for m, v in group.metrics.items()
                }
            by_view[view.name] = {
                d: put(f"disparities/{view.name}/{d}", v) for d, v in view.disparities.items()
            }
        predicate: dict[str, Any] = {
            "sensitiveFeatures": list(self.features),
            "rows": self.rows,
            "weighted": self.weighted,
            "overall": overall,
            "byGroup": by_group,
            "disparities": self._worst(),
            "disparitiesByView": by_view,
            "thresholds": dict(self.thresholds),
            "checks": [{"key": c.key, "view": c.view, "status": c.status,
                        "value": c.value.value, "bound": c.bound, "detail": c.describe()}
                       for c in self.checks],
            "passed": self.passed,
            "failures": self.failures,
            "undefined": undefined,
        }
        if intervals:
            predicate["intervals"] = intervals
            predicate["bootstrap"] = {"replicates": self.bootstrap, "confidence": self.confidence}
        if model is not None:
            predicate["model"] = model
        return predicate

    def _worst(self) -> dict[str, float | None]:
        """Each disparity at its worst over the views (None if undefined in any view)."""
        out: dict[str, float | None] = {}
        for name, (_, kind) in DISPARITIES.items():
            values = [v.disparities[name].value for v in self.views]
            if any(x is None for x in values):
                out[name] = None
            else:
                numbers = [float(x) for x in values if x is not None]
                out[name] = max(numbers) if kind == "difference" else min(numbers)
        return out

    def to_text(self) -> str:
        """A plain table for terminals and papermill: checks first, then groups, disparities."""
        verdict = {"pass": "PASS", "fail": "FAIL", "undefined": "UNDEFINED"}[self.status]
        weighted = ", weighted" if self.weighted else ""
        lines = [f"bias check {verdict}: {self.rows} rows{weighted}, sensitive features "
                 f"{', '.join(self.features)}"]
        for check in self.checks:
            lines.append(f"  [{check.status.upper():>9}] {check.describe()}")
        shown = [m for m in METRICS if m != "count"]
        for view in self.views:
            width = max(len(g.name) for g in view.groups) if view.groups else 5
            width = max(width, len("overall"))
            lines.append("")
            lines.append(f"{view.name}:")
            lines.append("  " + "group".ljust(width) + "".join(f"{_short(m):>11}" for m in shown)
                         + f"{'count':>10}")
            for group in (*view.groups, Group("overall", self.overall)):
                lines.append("  " + group.name.ljust(width) + "".join(
                    f"{group.metrics[m].text(interval=False):>11}" for m in shown)
                    + f"{_count(group.metrics['count']):>10}")
            for name, value in view.disparities.items():
                why = f" ({value.reason})" if value.reason else ""
                lines.append(f"  {name}: {value.text(4)}{why}")
        return "\n".join(lines)


def _short(metric: str) -> str:
    return {"selection_rate": "selection", "false_positive_rate": "FPR",
            "false_negative_rate": "FNR"}.get(metric, metric)


def _count(value: Value) -> str:
    return "-" if value.value is None else str(int(value.value))


def _nan(value: Value) -> float:
    return math.nan if value.value is None else value.value
