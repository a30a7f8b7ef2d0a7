"""Bias check: securenb.fairness.assess vs fairlearn (MetricFrame + disparity metrics).

Goal (issue 15): on 1,000,000 rows with two sensitive features (2 x 5 = 10 groups),
>= 50x faster than fairlearn's MetricFrame plus demographic parity and equalized
odds, with equal numbers, using <= 2x the memory of the input arrays. The inputs
are what ``pandas.read_csv`` gives: int64 labels and object (string) columns.
Memory is the peak RSS above the RSS before the call, measured in a forked child
(``/proc/self/clear_refs`` resets the peak there); the inputs' size counts the
strings (``memory_usage(deep=True)``).

    python -m benchmarks.bench_fairness [--rows 1000000] [--repeat 3] [--weighted]
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

MIB = 1 << 20


def _data(rows: int, weighted: bool) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    sex = rng.choice(["female", "male"], rows)
    race = rng.choice(["a", "b", "c", "d", "e"], rows)
    y_true = rng.integers(0, 2, rows)
    flip = rng.random(rows) < np.where(sex == "female", 0.15, 0.25)
    y_pred = np.where(flip, 1 - y_true, y_true)
    frame = pd.DataFrame({"sex": sex.astype(object), "race": race.astype(object)})
    weights = rng.uniform(0.5, 2.0, rows) if weighted else None
    return {"y_true": y_true, "y_pred": y_pred, "sf": frame, "w": weights}


def _input_bytes(data: dict[str, Any]) -> int:
    total = data["y_true"].nbytes + data["y_pred"].nbytes
    total += int(data["sf"].memory_usage(deep=True, index=False).sum())
    return total + (data["w"].nbytes if data["w"] is not None else 0)


def ours(data: dict[str, Any]) -> dict[str, float]:
    from securenb.fairness import assess

    report = assess(data["y_true"], data["y_pred"], data["sf"], sample_weight=data["w"])
    d = report.view().disparities
    return {k: float(d[k].value or 0) for k in ("demographic_parity_difference",
                                                "demographic_parity_ratio",
                                                "equalized_odds_difference",
                                                "equalized_odds_ratio")} | {
        "accuracy[female & a]": float(report.view().groups[0].metrics["accuracy"].value or 0)}


def fairlearn(data: dict[str, Any]) -> dict[str, float]:
    from fairlearn.metrics import (
        MetricFrame,
        count,
        demographic_parity_difference,
        demographic_parity_ratio,
        equalized_odds_difference,
        equalized_odds_ratio,
        false_negative_rate,
        false_positive_rate,
        selection_rate,
        true_positive_rate,
    )
    from sklearn.metrics import accuracy_score, precision_score

    y_true, y_pred, sf, w = data["y_true"], data["y_pred"], data["sf"], data["w"]
    metrics = {"selection_rate": selection_rate, "accuracy": accuracy_score,
               "precision": precision_score, "recall": true_positive_rate,
               "false_positive_rate": false_positive_rate,
               "false_negative_rate": false_negative_rate}
    params = {m: {"sample_weight": w} for m in metrics} if w is not None else None
    frame = MetricFrame(metrics={**metrics, "count": count}, y_true=y_true, y_pred=y_pred,
                        sensitive_features=sf, sample_params=params)
    kw = {"sensitive_features": sf, "sample_weight": w}
    return {
        "demographic_parity_difference": demographic_parity_difference(y_true, y_pred, **kw),
        "demographic_parity_ratio": demographic_parity_ratio(y_true, y_pred, **kw),
        "equalized_odds_difference": equalized_odds_difference(y_true, y_pred, **kw),
        "equalized_odds_ratio": equalized_odds_ratio(y_true, y_pred, **kw),
        "accuracy[female & a]": float(frame.by_group["accuracy"].iloc[0]),
    }


def _measure(fn: Callable[[dict[str, Any]], dict[str, float]], data: dict[str, Any],
             repeat: int) -> tuple[float, float, dict[str, float]]:
    """(best seconds, peak MiB above the inputs, numbers)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        numbers = fn(data)
        best = min(best, time.perf_counter() - start)
    return best, _peak_above(fn, data) / MIB, numbers


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def _peak_above(fn: Callable[[dict[str, Any]], dict[str, float]], data: dict[str, Any]) -> int:
    """Bytes of peak RSS above the RSS before calling ``fn``, in a forked child."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: reset the high-water mark, run once, report
        os.close(read)
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        before = _status_kib("VmRSS")
        fn(data)
        os.write(write, str((_status_kib("VmHWM") - before) * 1024).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as fh:
        value = int(fh.read())
    os.waitpid(pid, 0)
    return value


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--weighted", action="store_true")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    for weighted in sorted({False, args.weighted}):
        data = _data(args.rows, weighted)
        inputs = _input_bytes(data) / MIB
        ours(data)  # warm: imports
        t_ours, m_ours, n_ours = _measure(ours, data, args.repeat)
        t_fl, m_fl, n_fl = _measure(fairlearn, data, 1)
        equal = all(abs(n_ours[k] - n_fl[k]) <= 1e-9 for k in n_fl)
        label = "weighted" if weighted else "unweighted"
        print(f"{args.rows:,} rows, 2 sensitive features (10 groups), {label}; "
              f"inputs {inputs:.0f} MiB")
        print(f"{'':12}{'seconds':>10}{'peak MiB':>10}{'x inputs':>10}")
        print(f"{'securenb':12}{t_ours:>10.3f}{m_ours:>10.0f}{m_ours / inputs:>10.2f}")
        print(f"{'fairlearn':12}{t_fl:>10.3f}{m_fl:>10.0f}{m_fl / inputs:>10.2f}")
        print(f"speed-up x{t_fl / t_ours:.0f}; numbers equal: {equal}")
        for key in n_fl:
            print(f"  {key}: securenb {n_ours[key]:.10f}  fairlearn {float(n_fl[key]):.10f}")


if __name__ == "__main__":
    main()
