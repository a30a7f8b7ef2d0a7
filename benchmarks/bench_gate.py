"""Gate: one verdict over an artifact with 100 attestations.

Goal (issue 15): <= 50 ms. There is no reference tool to compare with; the
ratio printed is the goal over the time measured. ``evaluate`` reads the index,
loads each envelope blob, checks its digest and DSSE signature, and applies
the rules; recording the verdict (sign + durable audit entry) is timed apart.

    python -m benchmarks.bench_gate [--attestations 100] [--repeat 20]
"""

from __future__ import annotations

import argparse
import os
import pickle
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

GOAL_MS = 50.0


def _populate(root: Path, count: int) -> tuple[object, Path]:
    from securenb.core.attest import Dependency, RunProvenance, Subject
    from securenb.core.store import file_sha256
    from securenb.core.workspace import Workspace
    from securenb.fairness import assess
    from securenb.fairness.record import record
    from securenb.scan import scan_path
    from securenb.scan.attestation import scan_statement

    ws = Workspace.init(root, os.environ["SECURENB_KEY_PASSPHRASE"])
    model = root / "model.pkl"
    model.write_bytes(pickle.dumps({"w": list(range(100))}))
    digest, _ = file_sha256(model)
    rng = np.random.default_rng(0)
    y, groups = rng.integers(0, 2, 1000), rng.choice(["a", "b"], 1000)
    for i in range(count):
        kind = i % 3
        if kind == 0:
            digests: dict[str, tuple[str, int]] = {}
            statement = scan_statement(ws, scan_path(model, digests=digests), digests)
            assert statement is not None
            ws.attest(statement)
        elif kind == 1:
            record(ws, assess(y, y, groups), model)
        else:
            prov = RunProvenance("secure-train", f"r{i}", "2026-01-01T00:00:00Z",
                                 "2026-01-01T00:01:00Z", {"cell": {"sha256": "0" * 64}},
                                 {"sandbox": {"backend": "bwrap", "unsafe": False,
                                              "network": "none"}},
                                 [Dependency("securenb:cell", "0" * 64, "cell")], "bwrap")
            ws.attest(prov.statement([Subject("model.pkl", digest)]))
    return ws, model


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attestations", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args(argv)
    os.environ.setdefault("SECURENB_KEY_PASSPHRASE", "benchmark passphrase only")
    from securenb.gate import evaluate

    with tempfile.TemporaryDirectory() as tmp:
        ws, model = _populate(Path(tmp), args.attestations)
        evaluate(ws, model, record=False)  # warm: imports, key unlocked, schema compiled
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            verdict = evaluate(ws, model, record=False)
            times.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        evaluate(ws, model, record=True)
        recorded = (time.perf_counter() - start) * 1000
    best, median = min(times), statistics.median(times)
    print(f"gate over {verdict.attestations} attestations ({verdict.outcome}):")
    verdict_ = "met" if median <= GOAL_MS else "missed"
    print(f"  evaluate   best {best:.1f} ms, median {median:.1f} ms "
          f"(goal {GOAL_MS:.0f} ms {verdict_}: median / goal = {median / GOAL_MS:.2f})")
    print(f"  + record   {recorded:.1f} ms (gate attestation + durable audit entry)")


if __name__ == "__main__":
    main()
