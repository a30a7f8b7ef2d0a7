"""`securenb --help` start-up: side by side with importing every command first, which is
what listing the commands used to cost.

Goal (packaging issue): `securenb --help` under 0.3 s. Each run is a fresh process
(interpreter start included), alternating the two, so load on the machine hits both.

    python -m benchmarks cli [--runs 15]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

_HELP = ("import sys; sys.argv = ['securenb', '--help']\n{pre}"
         "from securenb.cli.main import main\ntry:\n    main()\nexcept SystemExit:\n    pass\n")
_IMPORT_ALL = ("import importlib; from securenb.cli.main import COMMANDS\n"
               "for target in COMMANDS.values():\n"
               "    importlib.import_module(target.partition(':')[0])\n")


def _once(code: str) -> float:
    began = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - began


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args(argv)
    variants = {"securenb --help": _HELP.format(pre=""),
                "... importing every command (before)": _HELP.format(pre=_IMPORT_ALL)}
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.runs):
        for name, code in variants.items():
            times[name].append(_once(code))
    print(f"{args.runs} runs each, alternating; seconds")
    print(f"{'':40} {'min':>6} {'median':>7} {'max':>6}")
    for name, values in times.items():
        print(f"{name:40} {min(values):6.3f} {statistics.median(values):7.3f} "
              f"{max(values):6.3f}")
    ours, before = (statistics.median(v) for v in times.values())
    held = sum(t < 0.3 for t in times["securenb --help"])
    print(f"median ratio: {before / ours:.1f}x faster; under 0.3 s in {held} of {args.runs} runs")


if __name__ == "__main__":
    main()
