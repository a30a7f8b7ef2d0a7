"""securenb.server.drop_caps: what a root server's kernels start without (no server here:
the launcher itself, as the kernel manager runs it)."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys

import pytest

from securenb.server import drop_caps
from securenb.server.deprivilege import launcher

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="drops root's capabilities")

_PROBE = """
import os, sys
from securenb.server.drop_caps import DROPPED
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
held = sorted(name for name, cap in DROPPED.items()
              for field in ("CapEff", "CapPrm", "CapBnd", "CapInh", "CapAmb")
              if int(status[field], 16) >> cap & 1)
try:
    open(f"/proc/{sys.argv[1]}/mem", "rb", 0)
    mem = "open"
except PermissionError:
    mem = "refused"
print(held, status["NoNewPrivs"].strip(), mem, os.geteuid())
"""


def test_a_command_run_through_it_cannot_read_a_non_dumpable_root_process() -> None:
    def probe(*prefix: str) -> str:
        return subprocess.run([*prefix, sys.executable, "-c", _PROBE, str(os.getpid())],
                              capture_output=True, text=True, timeout=60, check=True).stdout

    ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0, as the server (vault.py)
    try:
        plain, dropped = probe(), probe(*launcher())
    finally:
        ctypes.CDLL(None).prctl(4, 1, 0, 0, 0)
    assert "'CAP_SYS_PTRACE'" in plain and plain.split()[-2:] == ["open", "0"], plain  # root
    assert dropped.strip() == "[] 1 refused 0", dropped


def test_without_a_command_it_says_how_to_use_it() -> None:
    proc = subprocess.run([sys.executable, "-I", drop_caps.__file__], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.strip() == "usage: drop_caps.py -- COMMAND [ARGS...]"
