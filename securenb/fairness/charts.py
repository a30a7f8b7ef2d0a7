"""Charts of a bias check as Vega-Lite (JupyterLab renders it natively), and as PNG.

One bar per group for each metric, with CI whiskers when the check was
bootstrapped and, for the metrics a policy bound constrains, the lowest value a
group may have (top group minus the allowed difference, or top group times the
allowed ratio) drawn as a dashed line: a bar under it is what breaks the policy.
Below, each disparity per view, coloured by its check.
"""

from __future__ import annotations

from typing import Any

from securenb.fairness.metrics import DISPARITIES
from securenb.fairness.report import FairnessReport

SCHEMA = "https://vega.github.io/schema/vega-lite/v5.json"
MIME = "application/vnd.vegalite.v5+json"
CHARTED = ("selection_rate", "accuracy", "precision", "recall", "false_positive_rate",
           "false_negative_rate")
_COLOURS = {"pass": "#1a7f37", "fail": "#cf222e", "undefined": "#9a6700", "unbounded": "#57606a"}


def _floors(report: FairnessReport, metric: str, values: list[float]) -> list[dict[str, Any]]:
    """The lowest value each bound on a disparity of ``metric`` lets a group have."""
    out: list[dict[str, Any]] = []
    if not values:
        return out
    top = max(values)
    for key, bound in report.thresholds.items():
        disparity = key.partition("_")[2]
        if metric not in DISPARITIES[disparity][0]:
            continue
        kind = DISPARITIES[disparity][1]
        if (kind, key[:4]) in (("difference", "max_"), ("ratio", "min_")):
            floor = top - bound if kind == "difference" else top * bound
            out.append({"kind": "bound", "metric": metric, "value": max(floor, 0.0),
                        "label": f"{key} = {bound}"})
    return out


def vega_lite(report: FairnessReport, view: str | None = None) -> dict[str, Any]:
    """The Vega-Lite v5 spec: group metrics of ``view`` (default: the intersection), then
    the disparities of every view."""
    chosen = report.view(view)
    rows: list[dict[str, Any]] = []
    for metric in CHARTED:
        defined = []
        for group in chosen.groups:
            value = group.metrics[metric]
            if value.value is None:
                continue
            defined.append(value.value)
            row: dict[str, Any] = {"kind": "group", "metric": metric, "group": group.name,
                                   "value": value.value}
            if value.interval is not None:
                row["low"], row["high"] = value.interval
            rows.append(row)
        rows += _floors(report, metric, defined)
    status = {(c.view, c.disparity): c.status for c in report.checks}
    for v in report.views:
        for name, value in v.disparities.items():
            if value.value is None:
                continue
            row = {"kind": "disparity", "view": v.name, "disparity": name,
                   "label": f"{name} [{v.name}]", "value": value.value,
                   "status": status.get((v.name, name), "unbounded")}
            if value.interval is not None:
                row["low"], row["high"] = value.interval
            rows.append(row)
    kind = {"filter": "datum.kind == 'group'"}
    groups_chart = {
        "transform": [{"filter": "datum.kind != 'disparity'"}],
        "facet": {"column": {"field": "metric", "type": "nominal", "sort": list(CHARTED),
                             "title": None}},
        "spec": {
            "width": 28 * max(len(chosen.groups), 2), "height": 160,
            "layer": [
                {"transform": [kind], "mark": "bar",
                 "encoding": {"x": {"field": "group", "type": "nominal", "title": None},
                              "y": {"field": "value", "type": "quantitative",
                                    "scale": {"domain": [0, 1]}, "title": None},
                              "tooltip": [{"field": "group"}, {"field": "value",
                                                               "format": ".3f"}]}},
                {"transform": [kind, {"filter": "isValid(datum.low)"}], "mark": "errorbar",
                 "encoding": {"x": {"field": "group", "type": "nominal"},
                              "y": {"field": "low", "type": "quantitative"},
                              "y2": {"field": "high"}}},
                {"transform": [{"filter": "datum.kind == 'bound'"}],
                 "mark": {"type": "rule", "color": _COLOURS["fail"], "strokeDash": [4, 3]},
                 "encoding": {"y": {"field": "value", "type": "quantitative"},
                              "tooltip": [{"field": "label"}, {"field": "value",
                                                               "format": ".3f"}]}},
            ],
        },
        "resolve": {"scale": {"x": "independent"}},
        "title": f"groups of {chosen.name}",
    }
    colour = {"field": "status", "type": "nominal",
              "scale": {"domain": list(_COLOURS), "range": list(_COLOURS.values())}}
    disparity = {"filter": "datum.kind == 'disparity'"}
    disparities_chart = {
        "width": 420, "height": {"step": 14},
        "layer": [
            {"transform": [disparity], "mark": "bar",
             "encoding": {"y": {"field": "label", "type": "nominal", "title": None,
                                "axis": {"labelLimit": 320}},
                          "x": {"field": "value", "type": "quantitative", "title": None},
                          "color": colour,
                          "tooltip": [{"field": "view"}, {"field": "disparity"},
                                      {"field": "value", "format": ".4f"}, {"field": "status"}]}},
            {"transform": [disparity, {"filter": "isValid(datum.low)"}], "mark": "errorbar",
             "encoding": {"y": {"field": "label", "type": "nominal"},
                          "x": {"field": "low", "type": "quantitative"}, "x2": {"field": "high"}}},
        ],
        "title": "disparities per view (coloured by policy check)",
    }
    return {"$schema": SCHEMA, "data": {"values": rows},
            "vconcat": [groups_chart, disparities_chart]}


def png(report: FairnessReport, view: str | None = None, scale: float = 1.0) -> bytes:
    """The chart as PNG, for papermill outputs, terminals and reports."""
    import vl_convert

    data: bytes = vl_convert.vegalite_to_png(vl_spec=vega_lite(report, view), scale=scale)
    return data
