"""securenb.fairness.assess gives fairlearn's numbers, and refuses input fairlearn would misread."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import (
    MetricFrame,
    count,
    demographic_parity_difference,
    demographic_parity_ratio,
    equal_opportunity_difference,
    equalized_odds_difference,
    equalized_odds_ratio,
    false_negative_rate,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.metrics import accuracy_score, precision_score

from securenb.fairness import FairnessInputError, assess

FAIRLEARN_METRICS = {
    "selection_rate": selection_rate,
    "accuracy": accuracy_score,
    "precision": precision_score,
    "recall": true_positive_rate,
    "false_positive_rate": false_positive_rate,
    "false_negative_rate": false_negative_rate,
}


@st.composite
def datasets(draw: st.DrawFn) -> dict[str, object]:
    """Random binary data where every group has actual and predicted positives and negatives
    (so every fairlearn number is defined), one to three sensitive features, weights or not."""
    n_features = draw(st.integers(1, 3))
    sizes = [draw(st.integers(1, 4)) for _ in range(n_features)]
    if math.prod(sizes) == 1:
        sizes[0] = 2
    rows = draw(st.integers(40, 300))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    columns = {f"f{i}": rng.choice([f"g{j}" for j in range(s)], rows) for i, s in enumerate(sizes)}
    # every observed intersection gets all four (y_true, y_pred) cells, so rates are defined
    frame = pd.DataFrame(columns)
    y_true = rng.integers(0, 2, rows)
    y_pred = np.where(rng.random(rows) < draw(st.floats(0.5, 0.95)), y_true, 1 - y_true)
    keys = frame.astype(str).agg("|".join, axis=1).to_numpy()
    for key in np.unique(keys):
        idx = np.flatnonzero(keys == key)
        extra = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
        y_true = np.concatenate([y_true, extra[:, 0]])
        y_pred = np.concatenate([y_pred, extra[:, 1]])
        frame = pd.concat([frame, frame.iloc[[idx[0]] * 4]], ignore_index=True)
    weighted = draw(st.booleans())
    weights = rng.uniform(0.1, 5.0, len(y_true)) if weighted else None
    return {"y_true": y_true, "y_pred": y_pred, "sf": frame, "w": weights}


def _close(ours: float | None, theirs: float) -> None:
    assert ours is not None
    assert ours == pytest.approx(float(theirs), rel=1e-9, abs=1e-12)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(datasets())
def test_equal_to_fairlearn(data: dict[str, object]) -> None:
    y_true, y_pred, sf, w = data["y_true"], data["y_pred"], data["sf"], data["w"]
    assert isinstance(sf, pd.DataFrame)
    report = assess(y_true, y_pred, sf, sample_weight=w)
    params = {"sample_weight": w} if w is not None else {}
    frame = MetricFrame(
        metrics={**FAIRLEARN_METRICS, "count": count}, y_true=y_true, y_pred=y_pred,
        sensitive_features=sf,
        sample_params={m: params for m in FAIRLEARN_METRICS} if params else None,
    )
    view = report.view()  # the intersection of all features, as fairlearn groups them
    by_group = frame.by_group
    seen = 0
    for key, row in by_group.iterrows():
        key = key if isinstance(key, tuple) else (key,)
        if pd.isna(row["count"]):
            continue  # a combination that never occurs: fairlearn shows NaN, we leave it out
        name = " & ".join(f"{c}={v}" for c, v in zip(sf.columns, key, strict=True))
        group = next(g for g in view.groups if g.name == name)
        for metric in (*FAIRLEARN_METRICS, "count"):
            _close(group.metrics[metric].value, row[metric])
        seen += 1
    assert seen == len(view.groups)
    for metric, value in frame.overall.items():
        _close(report.overall[metric].value, value)
    kwargs = {"sensitive_features": sf, "sample_weight": w}
    d = view.disparities
    _close(d["demographic_parity_difference"].value,
           demographic_parity_difference(y_true, y_pred, **kwargs))
    _close(d["demographic_parity_ratio"].value, demographic_parity_ratio(y_true, y_pred, **kwargs))
    _close(d["equalized_odds_difference"].value,
           equalized_odds_difference(y_true, y_pred, **kwargs))
    _close(d["equalized_odds_ratio"].value, equalized_odds_ratio(y_true, y_pred, **kwargs))
    _close(d["equal_opportunity_difference"].value,
           equal_opportunity_difference(y_true, y_pred, **kwargs))
    # each single feature is a view of its own, equal to fairlearn on that column alone
    for column in sf.columns:
        single = report.view(column).disparities
        if len(report.view(column).groups) < 2:
            assert single["demographic_parity_difference"].value is None
            continue
        _close(single["demographic_parity_difference"].value,
               demographic_parity_difference(y_true, y_pred, sensitive_features=sf[column],
                                             sample_weight=w))
        _close(single["equalized_odds_difference"].value,
               equalized_odds_difference(y_true, y_pred, sensitive_features=sf[column],
                                         sample_weight=w))


def test_group_without_positives_is_undefined_where_fairlearn_says_zero() -> None:
    y_true = np.array([1, 0, 1, 0, 0, 0])
    y_pred = np.array([1, 0, 0, 1, 1, 0])
    sf = np.array(["a", "a", "a", "a", "b", "b"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = MetricFrame(metrics=true_positive_rate, y_true=y_true, y_pred=y_pred,
                             sensitive_features=sf).by_group["b"]
        theirs_eo = equalized_odds_difference(y_true, y_pred, sensitive_features=sf)
    assert theirs == 0  # fairlearn: a recall of 0 for a group that has no positives at all
    report = assess(y_true, y_pred, sf)
    recall = report.view().groups[1].metrics["recall"]
    assert recall.value is None
    assert "no actual positives" in (recall.reason or "")
    assert not math.isnan(theirs_eo)  # fairlearn gives a number; we refuse to
    eo = report.view().disparities["equalized_odds_difference"]
    assert eo.value is None and "recall is undefined for sensitive_feature_0=b" in (eo.reason or "")
    # an undefined disparity that policy bounds is not a pass
    assert not report.passed
    assert report.status == "undefined"
    assert any("cannot be checked" in f for f in report.failures)
    predicate = report.to_predicate()
    assert predicate["byGroup"]["sensitive_feature_0=b"]["recall"] is None
    assert "byGroup/sensitive_feature_0=b/recall" in predicate["undefined"]


def test_single_group_is_undefined_not_zero() -> None:
    report = assess([1, 0, 1], [1, 1, 0], ["x", "x", "x"])
    for name, value in report.view().disparities.items():
        assert value.value is None, name
        assert "only one group" in (value.reason or "")
    assert not report.passed


def test_no_predicted_positives_makes_precision_undefined() -> None:
    report = assess([1, 0, 1, 0], [0, 0, 1, 1], ["a", "a", "b", "b"])
    precision = report.view().groups[0].metrics["precision"]
    assert precision.value is None and "no predicted positives" in (precision.reason or "")


def test_zero_selection_everywhere_makes_ratio_undefined() -> None:
    report = assess([1, 0, 1, 0], [0, 0, 0, 0], ["a", "a", "b", "b"])
    ratio = report.view().disparities["demographic_parity_ratio"]
    assert ratio.value is None and "0 in every group" in (ratio.reason or "")
    assert report.view().disparities["demographic_parity_difference"].value == 0


@pytest.mark.parametrize(
    ("y_true", "y_pred", "sf", "weights", "message"),
    [
        ([1, 0, 1], [1, 0], ["a", "b", "a"], None, "y_true has 3 rows but y_pred has 2"),
        ([1.0, np.nan, 0.0], [1, 0, 1], ["a", "b", "a"], None, "y_true: 1 missing"),
        ([1, 0, 1], [1, None, 1], ["a", "b", "a"], None, "y_pred: 1 missing"),
        ([0, 1, 2], [1, 0, 1], ["a", "b", "a"], None, "3 distinct labels"),
        (["yes", "no", "no"], [1, 0, 1], ["a", "b", "a"], None, "positive label 1 is not"),
        ([1, 0, 1], [1, 0, 1], ["a", "b"], None, "2 values for 3 rows"),
        ([1, 0, 1], [1, 0, 1], ["a", None, "a"], None, "missing value at row 1"),
        ([1, 0, 1], [1, 0, 1], ["a", "b", "a"], [1, -1, 1], "negative weights"),
        ([1, 0, 1], [1, 0, 1], ["a", "b", "a"], [1, np.nan, 1], "NaN or infinite"),
        ([1, 0, 1], [1, 0, 1], ["a", "b", "a"], [1, 1], "2 values for 3 rows"),
        ([], [], [], None, "empty"),
        ([[1, 0]], [[1, 0]], ["a"], None, "1-D"),
    ],
)
def test_bad_input_is_a_clear_error(y_true: object, y_pred: object, sf: object,
                                    weights: object, message: str) -> None:
    with pytest.raises(FairnessInputError, match=message):
        assess(y_true, y_pred, sf, sample_weight=weights)


def test_string_labels_with_pos_label() -> None:
    y = np.array(["yes", "no", "yes", "no"])
    report = assess(y, y, ["a", "a", "b", "b"], pos_label="yes")
    assert report.overall["accuracy"].value == 1
    assert report.overall["selection_rate"].value == 0.5


def test_unknown_threshold_key_is_refused() -> None:
    with pytest.raises(FairnessInputError, match="max_<disparity>"):
        assess([1, 0], [1, 0], ["a", "b"], thresholds={"max_parity": 0.1})


def test_thresholds_decide_pass_and_fail() -> None:
    rng = np.random.default_rng(1)
    y_true = rng.integers(0, 2, 4000)
    sf = rng.choice(["a", "b"], 4000)
    fair = assess(y_true, y_true, sf, thresholds={"max_demographic_parity_difference": 0.2})
    assert fair.passed and fair.status == "pass"
    biased_pred = np.where(sf == "a", 1, y_true)
    biased = assess(y_true, biased_pred, sf,
                    thresholds={"max_demographic_parity_difference": 0.2})
    assert not biased.passed and biased.status == "fail"
    assert "breaks policy max_demographic_parity_difference" in biased.failures[0]


def test_bootstrap_intervals_bracket_the_group_metrics() -> None:
    rng = np.random.default_rng(2)
    y_true = rng.integers(0, 2, 5000)
    y_pred = np.where(rng.random(5000) < 0.8, y_true, 1 - y_true)
    sf = rng.choice(["a", "b", "c"], 5000)
    for weights in (None, rng.uniform(0.5, 2, 5000)):
        report = assess(y_true, y_pred, sf, sample_weight=weights, bootstrap=200,
                        random_state=0)
        for group in report.view().groups:
            acc = group.metrics["accuracy"]
            assert acc.interval is not None and acc.value is not None
            low, high = acc.interval
            assert low < acc.value < high and high - low < 0.1
        predicate = report.to_predicate()
        assert predicate["bootstrap"] == {"replicates": 200, "confidence": 0.95}
        assert "disparities/sensitive_feature_0/demographic_parity_difference" in (
            predicate["intervals"])


def test_predicate_matches_the_schema() -> None:
    from securenb.core.attest import FAIRNESS_PREDICATE, validate_predicate

    rng = np.random.default_rng(3)
    report = assess(rng.integers(0, 2, 500), rng.integers(0, 2, 500),
                    {"sex": rng.choice(["F", "M"], 500), "age": rng.integers(0, 3, 500)},
                    bootstrap=20)
    validate_predicate(FAIRNESS_PREDICATE, report.to_predicate(model="sha256:" + "0" * 64))
    undefined = assess([1, 0, 1], [1, 1, 0], ["x", "x", "x"]).to_predicate()
    validate_predicate(FAIRNESS_PREDICATE, undefined)
