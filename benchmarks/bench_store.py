"""Store: record 10,000 artifacts, then look one up by digest.

Goal (Foundation issue): a lookup by digest <= 1 ms. Side by side: the same
inserts through bare sqlite3 with one commit (the floor our transaction
handling adds to).
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from securenb.core.store import Artifact, Store, now_rfc3339


def _artifacts(n: int) -> list[Artifact]:
    return [
        Artifact(
            hashlib.sha256(str(i).encode()).hexdigest(),
            f"models/{i}.pt",
            "application/octet-stream",
            i,
            None,
            now_rfc3339(),
        )
        for i in range(n)
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=10_000)
    args = parser.parse_args(argv)
    arts = _artifacts(args.count)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "batch")
        t = time.perf_counter()
        store.add_artifacts(arts)
        batch = time.perf_counter() - t
        rows.append(("record 10k artifacts, one transaction", f"{batch * 1e3:.1f} ms", "-"))

        single = Store(Path(tmp) / "single")
        t = time.perf_counter()
        for a in arts[:1000]:
            single.add_artifacts([a])
        per = (time.perf_counter() - t) / 1000
        rows.append(
            (
                "record one artifact (durable commit each)",
                f"{per * 1e3:.2f} ms",
                f"{1 / per:,.0f}/s",
            )
        )

        db = sqlite3.connect(Path(tmp) / "raw.sqlite")
        db.execute(
            "CREATE TABLE a (digest TEXT, path TEXT, media TEXT, size INT, run TEXT, created TEXT)"
        )
        t = time.perf_counter()
        db.executemany(
            "INSERT INTO a VALUES (?,?,?,?,?,?)",
            [(a.digest, a.path, a.media_type, a.size, a.run_id, a.created) for a in arts],
        )
        db.commit()
        raw = time.perf_counter() - t
        rows.append(
            (
                "bare sqlite3 executemany (reference floor)",
                f"{raw * 1e3:.1f} ms",
                f"ours/raw {batch / raw:.2f}x",
            )
        )

        sample = random.Random(0).sample(arts, 1000)
        times = []
        for a in sample:
            t = time.perf_counter()
            assert store.find_artifacts(a.digest)[0].digest == a.digest
            times.append(time.perf_counter() - t)
        rows.append(
            (
                "query one artifact by digest (median)",
                f"{statistics.median(times) * 1e6:.0f} us",
                "goal <= 1 ms",
            )
        )
        rows.append(
            (
                "query one artifact by digest (p99)",
                f"{sorted(times)[int(len(times) * 0.99)] * 1e6:.0f} us",
                "goal <= 1 ms",
            )
        )
        prefix_times = []
        for a in sample[:200]:
            t = time.perf_counter()
            store.find_artifacts(a.digest[:12])
            prefix_times.append(time.perf_counter() - t)
        rows.append(
            (
                "query by 12-hex prefix (median)",
                f"{statistics.median(prefix_times) * 1e6:.0f} us",
                "goal <= 1 ms",
            )
        )
    width = max(len(r[0]) for r in rows)
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:>12}  {note}")


if __name__ == "__main__":
    main()
