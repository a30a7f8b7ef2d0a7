"""What a recorded scan names is what it read (securenb.scan.snapshot): under a read
lease through the file itself, else from a private copy; with real files, real writer
processes and the kernel's own leases."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import BinaryIO

import pytest

from securenb.scan.snapshot import read_stably


def _leases_here(folder: Path) -> bool:
    """Whether this filesystem grants read leases (else every scan takes the copy)."""
    probe = folder / "probe"
    probe.write_bytes(b"x")
    with open(probe, "rb") as fh:
        try:
            fcntl.fcntl(fh.fileno(), fcntl.F_SETSIG, signal.SIGURG)
            fcntl.fcntl(fh.fileno(), fcntl.F_SETLEASE, fcntl.F_RDLCK)
        except OSError:
            return False
        fcntl.fcntl(fh.fileno(), fcntl.F_SETLEASE, fcntl.F_UNLCK)
    return True


def _content(f: BinaryIO) -> bytes:
    f.seek(0)
    return f.read()


def test_an_unshared_file_is_scanned_in_place_and_hashed_once(tmp_path: Path) -> None:
    model = tmp_path / "model.bin"
    model.write_bytes(b"weights" * 10_000)
    with open(model, "rb") as fh:
        seen, digest, size = read_stably(fh, model, lambda f: (f is fh, _content(f)))
    in_place, read = seen
    assert in_place is _leases_here(tmp_path)  # no copy where the kernel grants a lease
    assert read == model.read_bytes() and size == len(read)
    assert digest == hashlib.sha256(read).hexdigest()


def test_a_file_open_for_writing_is_scanned_from_a_copy(tmp_path: Path) -> None:
    model = tmp_path / "model.bin"
    model.write_bytes(b"before" * 10_000)
    with open(model, "r+b") as writer, open(model, "rb") as fh:  # a writer holds it open
        seen, digest, _ = read_stably(fh, model, lambda f: (f is fh, _content(f)))
        writer.write(b"AFTER!")  # after the copy: the record is not about these bytes
    in_place, read = seen
    assert not in_place and read == b"before" * 10_000
    assert digest == hashlib.sha256(read).hexdigest()


_OPEN_FOR_WRITING = """
import sys
with open(sys.argv[1], "r+b") as f:  # blocks while a read lease is held
    f.write(b"CHANGED")
"""


def test_a_writer_arriving_during_the_scan_breaks_the_lease_and_the_copy_is_used(
        tmp_path: Path) -> None:
    model = tmp_path / "model.bin"
    model.write_bytes(b"original" * 10_000)
    if not _leases_here(tmp_path):
        pytest.skip("this filesystem grants no read leases: every scan takes the copy "
                    "(test_a_file_open_for_writing_is_scanned_from_a_copy)")
    calls: list[bool] = []
    writer: list[subprocess.Popen[bytes]] = []

    def scan(f: BinaryIO) -> str:
        calls.append(f is fh)
        if len(calls) == 1:  # under the lease: a writer comes and waits for it
            writer.append(subprocess.Popen([sys.executable, "-c", _OPEN_FOR_WRITING, model]))
            deadline = time.monotonic() + 30
            while fcntl.fcntl(fh.fileno(), fcntl.F_GETLEASE) != fcntl.F_UNLCK:
                assert time.monotonic() < deadline, "the lease was never broken"
                time.sleep(0.01)
        return hashlib.sha256(_content(f)).hexdigest()

    with open(model, "rb") as fh:
        scanned, digest, _ = read_stably(fh, model, scan)
    writer[0].wait(timeout=60)
    assert calls == [True, False]  # the leased reading was dropped, the copy scanned
    assert scanned == digest  # the record names exactly what the second scan read
    assert model.read_bytes().startswith(b"CHANGED")


_REWRITE_IN_PLACE = """
import os, sys
names = [f"race{i}.pkl" for i in range(int(sys.argv[1]))]
safe, bad = open("../safe.pkl", "rb").read(), open("../bad.pkl", "rb").read()
print("rewriting", flush=True)
while True:  # each file rewritten in place: the safe pickle, then the bad one
    for data in (safe, bad):
        for name in names:
            with open(name, "wb") as f:
                f.write(data)
"""


def test_files_rewritten_in_place_during_a_recorded_scan(tmp_path: Path) -> None:
    """`securenb scan` in a workspace while another process rewrites each file in place:
    no SAFE verdict on the bad pickle's digest, no UNSAFE on the safe one's."""
    import pickle

    from securenb.core.workspace import Workspace

    passphrase = "snapshot test"
    ws = Workspace.init(tmp_path, passphrase)
    (tmp_path / "safe.pkl").write_bytes(pickle.dumps({"w": [1.0, 2.0]}))
    (tmp_path / "bad.pkl").write_bytes(b"cos\nsystem\n(S'true'\ntR.")
    safe = hashlib.sha256((tmp_path / "safe.pkl").read_bytes()).hexdigest()
    bad = hashlib.sha256((tmp_path / "bad.pkl").read_bytes()).hexdigest()
    folder = tmp_path / "models"
    folder.mkdir()
    count = 16
    for i in range(count):
        (folder / f"race{i}.pkl").write_bytes(b"")
    writer = subprocess.Popen([sys.executable, "-c", _REWRITE_IN_PLACE, str(count)],
                              cwd=folder, stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout is not None and writer.stdout.readline() == "rewriting\n"
        done = subprocess.run([str(Path(sys.executable).parent / "securenb"), "scan", "--json",
                               "models"], cwd=tmp_path, capture_output=True, text=True,
                              timeout=300, env={**os.environ,
                                                "SECURENB_KEY_PASSPHRASE": passphrase})
    finally:
        writer.kill()
        writer.wait()
    assert '"attestations"' in done.stdout, done.stderr
    (record,) = ws.store.list_attestations()
    _, statement = ws.load_attestation(record.envelope)
    verdicts = {Path(f["path"]).name: f["verdict"] for f in statement["predicate"]["files"]}
    named = {Path(s["name"]).name: s["digest"]["sha256"] for s in statement["subject"]}
    assert len(named) == count
    for name, digest in named.items():
        if digest == safe:
            assert verdicts[name] == "SAFE", (name, verdicts[name])
        elif digest == bad:
            assert verdicts[name] == "UNSAFE", (name, verdicts[name])


_AS_NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
_IN_PLACE_AS_CALLER = """
import sys
from pathlib import Path
from securenb.scan.snapshot import read_stably
for name in sys.argv[1:]:
    with open(name, "rb") as fh:
        (in_place, read), _, _ = read_stably(fh, Path(name), lambda f: (f is fh, f.read()))
    print(name, in_place, read == Path(name).read_bytes())
"""


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None,
                    reason="needs root to become another user")
def test_a_non_root_caller_leases_its_own_files_and_copies_anothers() -> None:
    """Leases need the file's owner (or CAP_LEASE, which root has): a regular user's scan
    reads its own file in place, and someone else's readable file from a private copy."""
    folder = Path(tempfile.mkdtemp(prefix="securenb-lease-"))
    try:
        os.chmod(folder, 0o755)
        own, other = folder / "own.bin", folder / "other.bin"
        own.write_bytes(b"mine" * 1000)
        other.write_bytes(b"root's" * 1000)
        os.chown(own, 65534, 65534)
        other.chmod(0o644)  # readable by the caller, owned by root
        done = subprocess.run([*_AS_NOBODY, sys.executable, "-c", _IN_PLACE_AS_CALLER,
                               str(own), str(other)], cwd=folder, capture_output=True,
                              text=True, timeout=120,
                              env={"PATH": os.environ["PATH"],
                                   "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
        assert done.returncode == 0, done.stderr
        leases = _leases_here(folder)
        assert done.stdout.splitlines() == [f"{own} {leases} True", f"{other} False True"]
    finally:
        shutil.rmtree(folder)
