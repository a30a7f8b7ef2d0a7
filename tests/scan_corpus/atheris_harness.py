"""Coverage-guided fuzzing of the scanner with atheris (run by tests/test_scan_fuzz.py).

python tests/scan_corpus/atheris_harness.py -runs=100000 SEED_DIR
"""

from __future__ import annotations

import io
import sys

import atheris

with atheris.instrument_imports():
    from securenb.scan import ScanOptions
    from securenb.scan.allowlist import Allowlist
    from securenb.scan.engine import scan_open_file

OPTIONS = ScanOptions(max_decompressed_bytes=32 << 20, max_pickle_ops=200_000, hdf5_timeout_s=5)
ALLOWLIST = Allowlist()


def one(data: bytes) -> None:
    report = scan_open_file(io.BytesIO(data), "fuzz", ALLOWLIST, OPTIONS)
    errors = [f.message for f in report.findings if f.rule == "scan.error"]
    if errors:
        raise RuntimeError(errors[0])


if __name__ == "__main__":
    atheris.Setup(sys.argv, one)
    atheris.Fuzz()
