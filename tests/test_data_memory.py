"""Peak memory stays under 64 MiB whatever the file size (checked on a file larger than that).

Measured with ``getrusage`` in a grandchild: on Linux a child's own ru_maxrss
starts at its parent's high-water mark (recorded at exec), and pytest is big,
so a small launcher runs the work and reports RUSAGE_CHILDREN.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest

LIMIT_MIB = 64
SIZE = 96 << 20

CHILD = """
import resource, sys
import securenb.data as data
op, src, dst = sys.argv[1:4]
if op == "encrypt":
    data.encrypt(src, dst, kek="env:TEST_KEK")
elif op == "decrypt":
    data.decrypt(src, dst)
elif op == "read":
    with data.open_encrypted(src) as f:
        while f.read(1 << 20):
            pass
        assert f.digest_checked
else:
    data.migrate(src, dst, fernet="env:TEST_FERNET", kek="env:TEST_KEK")
"""

LAUNCHER = """
import resource, subprocess, sys
subprocess.run([sys.executable, "-c", sys.argv[1], *sys.argv[2:]], check=True)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024)
"""


def peak_mib(op: str, src: Path, dst: Path, env: dict[str, str]) -> int:
    done = subprocess.run([sys.executable, "-c", LAUNCHER, CHILD, op, str(src), str(dst)],
                          env={**os.environ, **env}, capture_output=True, text=True, check=False,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    return int(done.stdout.strip())


@pytest.mark.slow
def test_peak_memory_is_bounded(tmp_path: Path) -> None:
    src = tmp_path / "big.bin"
    with open(src, "wb") as fh:
        for _ in range(SIZE >> 20):
            fh.write(os.urandom(1 << 20))
    env = {"TEST_KEK": base64.b64encode(os.urandom(32)).decode()}
    enc, out = tmp_path / "big.bin.enc", tmp_path / "out.bin"
    peaks = {"encrypt": peak_mib("encrypt", src, enc, env)}
    peaks["decrypt"] = peak_mib("decrypt", enc, out, env)
    peaks["read"] = peak_mib("read", enc, out, env)
    assert out.stat().st_size == SIZE
    assert all(peak <= LIMIT_MIB for peak in peaks.values()), peaks


@pytest.mark.slow
def test_migrating_a_fernet_file_is_bounded_too(tmp_path: Path) -> None:
    from cryptography.fernet import Fernet

    key = Fernet.generate_key()
    legacy = tmp_path / "big.csv.encrypted"
    legacy.write_bytes(Fernet(key).encrypt(os.urandom(80 << 20)))  # the recipe: ~4x in memory
    env = {"TEST_KEK": base64.b64encode(os.urandom(32)).decode(), "TEST_FERNET": key.decode()}
    assert peak_mib("migrate", legacy, tmp_path / "big.csv.enc", env) <= LIMIT_MIB
