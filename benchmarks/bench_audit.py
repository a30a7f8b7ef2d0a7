"""Audit log: durable appends/s, offline verification of a big log, proof checks.

Goals (Foundation issue): >= 10,000 durable appends/s (group commit: batches
through append_many, and threads calling append concurrently); full offline
verification of a 1,000,000-entry log <= 5 s; one inclusion proof check <= 1 ms.
Side by side: the bare cost of one small write + fdatasync on this disk, the
floor under every durable commit.

    python -m benchmarks audit                      # full run (builds a 1M-entry log)
    python -m benchmarks.bench_audit --entries 100000 --threads 16   # quick
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import threading
import time
from pathlib import Path

from securenb.core.audit import AuditEntry, AuditLog, verify_inclusion_proof, verify_log
from securenb.core.audit.merkle import verify_inclusion
from securenb.core.audit.storage import datasync
from securenb.core.keys import PrivateKey


def _entries(start: int, count: int) -> list[AuditEntry]:
    return [
        AuditEntry.new("model.sign", f"sha256:{i:064x}",
                       details={"path": f"models/{i}.safetensors", "run": i // 100},
                       actor="ci")
        for i in range(start, start + count)
    ]


def _fsync_floor(directory: Path) -> float:
    fd = os.open(directory / "floor", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        times = []
        for i in range(200):
            t = time.perf_counter()
            os.pwrite(fd, b"x" * 200, i * 200)
            datasync(fd)
            times.append(time.perf_counter() - t)
    finally:
        os.close(fd)
    return statistics.median(times)


def _threads(directory: Path, key: PrivateKey, threads: int, per_thread: int) -> float:
    with AuditLog(directory, key) as log:

        def work(worker: int) -> None:
            for i in range(per_thread):
                log.append("model.sign", f"w{worker}-{i}", details={"i": i}, actor="ci")

        pool = [threading.Thread(target=work, args=(w,)) for w in range(threads)]
        t = time.perf_counter()
        for p in pool:
            p.start()
        for p in pool:
            p.join()
        return threads * per_thread / (time.perf_counter() - t)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=1_000_000, help="size of the big log")
    parser.add_argument("--batch", type=int, default=1000, help="append_many batch size")
    parser.add_argument("--threads", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--per-thread", type=int, default=500)
    args = parser.parse_args(argv)
    key = PrivateKey.generate()
    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        base = Path(tmp)
        floor = _fsync_floor(base)
        rows.append(("floor: 200-byte write + fdatasync (median)", f"{floor * 1e3:.2f} ms",
                     f"{1 / floor:,.0f} commits/s at best"))

        # One thread, append_many batches: also builds the big log.
        big = base / "big"
        with AuditLog(big, key) as log:
            prepare = build = 0.0
            for start in range(0, args.entries, args.batch):
                t = time.perf_counter()
                batch = _entries(start, min(args.batch, args.entries - start))
                t2 = time.perf_counter()
                log.append_many(batch)
                prepare += t2 - t
                build += time.perf_counter() - t2
            n = args.entries
            rows.append((f"append_many, batches of {args.batch}, 1 thread",
                         f"{n / (prepare + build):,.0f}/s", "goal >= 10,000/s"))
            rows.append(("  append_many alone (AuditEntry objects made beforehand)",
                         f"{n / build:,.0f}/s", "canonical JSON, write, fsync, sign"))

            t = time.perf_counter()
            for i in range(300):
                log.append("model.sign", f"single-{i}", actor="ci")
            single = (time.perf_counter() - t) / 300
            rows.append(("append, 1 thread (one commit each)", f"{1 / single:,.0f}/s",
                         f"{single * 1e3:.2f} ms per durable append"))

            indices = random.Random(0).sample(range(n), 200)
            proofs = [log.inclusion_proof(i) for i in indices]
            t = time.perf_counter()
            for i in indices[:50]:
                log.inclusion_proof(i)
            make = (time.perf_counter() - t) / 50
            root = log.head().checkpoint.root

        for threads in args.threads:
            rate = _threads(base / f"threads{threads}", key, threads, args.per_thread)
            rows.append((f"append from {threads} threads (group commit)", f"{rate:,.0f}/s",
                         "goal >= 10,000/s"))

        t = time.perf_counter()
        report = verify_log(big, key.public)
        took = time.perf_counter() - t
        size_mb = (big / "entries.jsonl").stat().st_size / 1e6
        rows.append((f"verify_log: {report.entries:,} entries, {report.checkpoints:,} "
                     f"checkpoints ({size_mb:.0f} MB)", f"{took:.2f} s", "goal <= 5 s"))

        rows.append(("make one inclusion proof (from tree.bin)", f"{make * 1e6:.0f} us", "-"))
        times = []
        for p in proofs:
            t = time.perf_counter()
            verify_inclusion(p.leaf_hash, p.index, p.tree_size, p.hashes, root)
            times.append(time.perf_counter() - t)
        rows.append((f"check one inclusion proof, {len(proofs[0].hashes)} hashes (median)",
                     f"{statistics.median(times) * 1e6:.0f} us", "goal <= 1 ms"))
        times = []
        for p in proofs:
            t = time.perf_counter()
            verify_inclusion_proof(p, key.public)
            times.append(time.perf_counter() - t)
        rows.append(("  with the checkpoint signature and entry hash (median)",
                     f"{statistics.median(times) * 1e6:.0f} us", "goal <= 1 ms"))
    width = max(len(r[0]) for r in rows)
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:>12}  {note}")


if __name__ == "__main__":
    main()
