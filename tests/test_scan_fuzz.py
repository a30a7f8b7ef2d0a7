"""Robustness: mutated pickles and archives never crash, hang or blow up the scanner.

Every run ends in a verdict; ``scan.error`` (an exception inside a format scanner) counts
as a failure, as does a scan slower than the deadline. Hypothesis always runs; atheris
(coverage-guided, libFuzzer) runs a short session when it is installed.
"""

from __future__ import annotations

import importlib.util
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scan_corpus.seeds import seeds

from securenb.scan import ScanOptions, Verdict
from securenb.scan.allowlist import Allowlist
from securenb.scan.engine import scan_open_file

SEEDS = seeds()
OPTIONS = ScanOptions(max_decompressed_bytes=32 << 20, max_pickle_ops=200_000)
ALLOWLIST = Allowlist()


def scan(data: bytes) -> Verdict:
    report = scan_open_file(io.BytesIO(data), "fuzz", ALLOWLIST, OPTIONS)
    errors = [f.message for f in report.findings if f.rule == "scan.error"]
    assert not errors, errors
    return report.verdict


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "repeat", "int"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 32))]
        elif kind == "truncate":
            del data[at:]
        elif kind == "repeat":
            data[at:at] = data[at : at + draw(st.integers(1, 64))] * draw(st.integers(2, 50))
        elif kind == "int" and len(data) >= at + 8:
            data[at : at + 8] = draw(
                st.sampled_from([0, 1, 2**31 - 1, 2**32 - 1, 2**63 - 1, 2**64 - 1])
            ).to_bytes(8, "little")
    return bytes(data)


@settings(
    max_examples=400, deadline=2000, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
@given(mutated())
def test_mutated_files_always_get_a_verdict(data: bytes) -> None:
    scan(data)


@settings(max_examples=150, deadline=2000, derandomize=True)
@given(st.binary(max_size=2048))
def test_random_bytes_always_get_a_verdict(data: bytes) -> None:
    scan(data)


def test_seeds_scan_cleanly() -> None:
    verdicts = [scan(seed) for seed in SEEDS]
    assert verdicts[6] is Verdict.UNSAFE and verdicts.count(Verdict.SAFE) == len(SEEDS) - 1


@pytest.mark.skipif(importlib.util.find_spec("atheris") is None, reason="atheris not installed")
def test_atheris_session(tmp_path: Path) -> None:
    corpus = tmp_path / "seeds"
    corpus.mkdir()
    for i, seed in enumerate(SEEDS):
        (corpus / f"{i}").write_bytes(seed)
    harness = Path(__file__).parent / "scan_corpus" / "atheris_harness.py"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")]
        ),
    }
    proc = subprocess.run(
        [
            sys.executable,
            str(harness),
            "-runs=4000",
            "-max_len=4096",
            "-rss_limit_mb=2048",
            "-timeout=10",
            f"-artifact_prefix={tmp_path}/",
            str(corpus),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
