"""`securenb --help` start-up: side by side with the same page through click (what it
cost before it was written from securenb.cli.main's tables) and with importing every
command first (what listing the commands cost before that).

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
from pathlib import Path

_HELP = ("import sys; sys.argv = ['securenb', '--help']\n{pre}"
         "from securenb.cli.main import main\ntry:\n    main()\nexcept SystemExit:\n    pass\n")
_CLICK = ("from securenb.cli.group import cli\ntry:\n"
          "    cli.main(['--help'], prog_name='securenb')\nexcept SystemExit:\n    pass\n")
_IMPORT_ALL = ("import importlib; from securenb.cli.main import COMMANDS\n"
               "for target in COMMANDS.values():\n"
               "    importlib.import_module(target.partition(':')[0])\n")


def _once(argv: list[str]) -> float:
    began = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - began


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args(argv)
    python = [sys.executable, "-c"]
    variants = {"securenb --help (the installed command)": [str(Path(sys.executable).parent
                                                                / "securenb"), "--help"],
                "securenb --help": [*python, _HELP.format(pre="")],
                "... through click (before)": [*python, _CLICK],
                "... importing every command (before that)": [*python,
                                                              _HELP.format(pre=_IMPORT_ALL)]}
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.runs):
        for name, argv in variants.items():
            times[name].append(_once(argv))
    print(f"{args.runs} runs each, alternating; seconds")
    print(f"{'':44} {'min':>6} {'median':>7} {'max':>6}")
    for name, values in times.items():
        print(f"{name:44} {min(values):6.3f} {statistics.median(values):7.3f} "
              f"{max(values):6.3f}")
    _, ours, click_, before = (statistics.median(v) for v in times.values())
    for name, values in times.items():
        held = sum(t < 0.3 for t in values)
        print(f"{name}: under 0.3 s in {held} of {args.runs} runs")
    print(f"median ratio: {click_ / ours:.1f}x faster than through click, "
          f"{before / ours:.1f}x than importing every command")


if __name__ == "__main__":
    main()
