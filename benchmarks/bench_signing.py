"""Signing: a 1 GiB model and a folder of 20 files, side by side with sha256sum and model-signing.

Goals (signing issue): sign/verify at >= 0.95x plain SHA-256 throughput, BLAKE3
>= 2.5x SHA-256, peak memory <= 100 MB whatever the size.

Every measurement runs in its own process: ``wall`` is that whole process
(interpreter start and imports included), ``op`` the operation alone as timed
inside it (for securenb: hash + sign + attestation + audit entries; the key is
unlocked before, its cost is shown on its own row), ``peak RSS`` the process's
high-water mark from ``wait4``. Files are read once first, so every tool reads
from the page cache. The data lives in a temporary folder under /tmp, removed
at the end.

The securenb API rows unlock the workspace keys as the CLI does (the record
key, and the release key to sign), before the workspace and the signing
service are imported (``securenb.signing.unlock``): each key's scrypt needs
64 MiB while it runs, and that buffer should not stack on the imports. The
"unlocked after the imports" rows show the other order (``Workspace.find()``
then ``ws.signer()``), as a program that does not care. The "through the
agent" rows send the request to a running ``securenb agent`` (keys unlocked
there once; it hashes, signs and records): ``op`` is the request's round trip,
peak RSS the client's.

    python -m benchmarks signing            # or: python -m benchmarks.bench_signing
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from securenb.core.keys import PrivateKey

GIB = 1 << 30
PASSPHRASE = "benchmark passphrase"  # a throwaway workspace's passphrase

_SECURENB = """
import json, sys, time
from pathlib import Path
op, path, alg, order = sys.argv[1:5]
purposes = ("record", "release") if op == "sign" else ("record",)
if order == "agent":
    from securenb.signing.remote import RemoteSigner
    from securenb.signing.service import SignRequest
    agent = RemoteSigner.for_agent(Path.cwd())
    t3 = time.perf_counter()
    if op == "sign":
        agent.sign(SignRequest(str(Path(path).absolute()), algorithm=alg))
    else:
        assert agent.verify(Path(path).absolute()).verified
    print(json.dumps({"op": time.perf_counter() - t3}))
    sys.exit(0)
if order == "unlock-first":
    from securenb.signing.unlock import adopt, unlock_policy_key
    t1 = time.perf_counter()
    unlocked = [unlock_policy_key(None, p) for p in purposes]
    t2 = time.perf_counter()
    from securenb.core.workspace import Workspace
    from securenb.signing import SignRequest, sign, verify
    ws = Workspace.find()
    assert all(adopt(ws, u) for u in unlocked), "a key unlocked first is not the policy's"
else:
    from securenb.core.workspace import Workspace
    from securenb.signing import SignRequest, sign, verify
    ws = Workspace.find()
    t1 = time.perf_counter()
    ws.signer()
    if op == "sign":
        ws.purpose_signer("release")
    t2 = time.perf_counter()
# What sign/verify import on first use (model_signing, sigstore), so that `op` stays
# hash + sign + records; imported after the unlock in both orders, as they are there.
import securenb.signing.model_sign, securenb.signing.model_verify
t3 = time.perf_counter()
if op == "sign":
    sign(ws, SignRequest(path, algorithm=alg))
else:
    result = verify(ws, Path(path))
    assert result.verified, result.lines()
t4 = time.perf_counter()
print(json.dumps({"op": t4 - t3, "unlock": t2 - t1}))
"""

_MODEL_SIGNING = """
import json, sys, time
import model_signing
op, path, alg, key, sig = sys.argv[1:6]
t0 = time.perf_counter()
hashing = model_signing.hashing.Config().use_file_serialization(hashing_algorithm=alg)
if op == "sign":
    (model_signing.signing.Config().use_elliptic_key_signer(private_key=key)
     .set_hashing_config(hashing).sign(path, sig))
else:
    (model_signing.verifying.Config().use_elliptic_key_verifier(public_key=key)
     .set_hashing_config(hashing).verify(path, sig))
print(json.dumps({"op": time.perf_counter() - t0}))
"""

_PLAIN = """
import hashlib, json, os, sys, time
import blake3
how, path = sys.argv[1:3]
files = [path] if os.path.isfile(path) else sorted(
    os.path.join(path, f) for f in os.listdir(path))
t0 = time.perf_counter()
for name in files:
    if how == "blake3-mmap":
        blake3.blake3(max_threads=blake3.blake3.AUTO).update_mmap(name)
        continue
    h = hashlib.sha256()
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    with open(name, "rb", buffering=0) as fh:
        while n := fh.readinto(buf):
            h.update(view[:n])
print(json.dumps({"op": time.perf_counter() - t0}))
"""

_CLI = """
import sys
from securenb.cli.main import cli, main
from securenb.cli.sign_cmd import sign, verify
for command in (sign, verify):
    cli.add_command(command)
main()
"""


@dataclass
class Row:
    tool: str
    model: str
    wall: float
    op: float | None
    size: int
    rss_mb: float

    def line(self) -> str:
        op = f"{self.op:.2f}" if self.op is not None else "-"
        speed = self.size / GIB / (self.op if self.op is not None else self.wall)
        return (f"| {self.tool} | {self.model} | {self.wall:.2f} | {op} | {speed:.2f} | "
                f"{self.rss_mb:.0f} |")


_LAUNCHER = """
import json, resource, subprocess, sys, time
start = time.perf_counter()
code = subprocess.run(sys.argv[1:]).returncode
wall = time.perf_counter() - start
print(json.dumps({"wall": wall, "rss_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
sys.exit(code)
"""


def measure(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, dict[str, float],
                                                                       float]:
    """(wall seconds, the JSON the child printed, peak RSS in MB) of one process.

    A small launcher starts it, so the peak RSS is the child's own (a child forked
    from this big process would inherit its high-water mark until exec).
    """
    proc = subprocess.run([sys.executable, "-c", _LAUNCHER, *argv], cwd=cwd, env=env,
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[:3]} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    launcher = json.loads(lines[-1])
    data = json.loads(lines[-2]) if len(lines) > 1 else {}
    return launcher["wall"], data, launcher["rss_kb"] / 1024


def _make_data(root: Path, size: int, files: int) -> tuple[Path, Path]:
    big, folder = root / "model.bin", root / "folder"
    folder.mkdir()
    chunk = 16 << 20
    with open(big, "wb") as fh:
        for _ in range(size // chunk):
            fh.write(os.urandom(chunk))
    per_file = size // files
    for i in range(files):
        (folder / f"shard-{i:02d}.safetensors").write_bytes(os.urandom(per_file))
    for path in (big, *folder.iterdir()):  # into the page cache, for every tool alike
        with open(path, "rb") as fh:
            while fh.read(16 << 20):
                pass
    return big, folder


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=GIB, help="bytes per model (default 1 GiB)")
    parser.add_argument("--files", type=int, default=20, help="files in the folder model")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs per line; the fastest is kept (the VM is shared)")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="securenb-bench-signing-", dir="/tmp"))
    try:
        _run(root, args.size, args.files, args.repeat)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _run(root: Path, size: int, files: int, repeat: int) -> None:
    from securenb.core.workspace import Workspace

    env = {**os.environ, "SECURENB_KEY_PASSPHRASE": PASSPHRASE}
    big, folder = _make_data(root, size, files)
    Workspace.init(root, PASSPHRASE)
    key = PrivateKey.generate()
    (root / "ms.pem").write_bytes(key.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    (root / "ms.pub").write_bytes(key.public.pem())
    py = sys.executable
    rows: list[Row] = []
    unlock: list[float] = []
    labels = [f"{size / GIB:g} GiB file", f"{files} files, {size / GIB:g} GiB"]
    for model, label in zip((big, folder), labels, strict=True):
        real = sum(p.stat().st_size for p in ([model] if model.is_file() else model.iterdir()))

        def row(tool: str, argv: list[str], label: str = label, real: int = real) -> None:
            runs = [measure(argv, root, env) for _ in range(repeat)]
            wall, data, _ = min(runs, key=lambda r: r[1].get("op", r[0]))
            rows.append(Row(tool, label, wall, data.get("op"), real, max(r[2] for r in runs)))
            unlock.extend(r[1]["unlock"] for r in runs if "unlock" in r[1])

        targets = [str(model)] if model.is_file() else sorted(str(p) for p in model.iterdir())
        row("sha256sum (coreutils)", ["sha256sum", *targets])
        row("Python hashlib SHA-256 (1 MiB reads)", [py, "-c", _PLAIN, "sha256", str(model)])
        row("BLAKE3 update_mmap (whole file mapped)", [py, "-c", _PLAIN, "blake3-mmap",
                                                       str(model)])
        sig = root / f"{model.name}.ms.sig"
        for alg in ("sha256", "blake3"):
            row(f"model-signing API sign ({alg})",
                [py, "-c", _MODEL_SIGNING, "sign", str(model), alg, str(root / "ms.pem"),
                 str(sig)])
            row(f"model-signing API verify ({alg})",
                [py, "-c", _MODEL_SIGNING, "verify", str(model), alg, str(root / "ms.pub"),
                 str(sig)])
        row("model-signing CLI sign key (sha256)",
            [py, "-m", "model_signing", "sign", "key", str(model), "--private_key",
             str(root / "ms.pem"), "--signature", str(sig)])
        for alg in ("sha256", "blake3"):
            for op in ("sign", "verify"):
                row(f"securenb {op} ({alg})",
                    [py, "-c", _SECURENB, op, str(model), alg, "unlock-first"])
        for op in ("sign", "verify"):
            row(f"securenb {op} (sha256), key unlocked after the imports",
                [py, "-c", _SECURENB, op, str(model), "sha256", "unlock-after"])
        row("securenb CLI `sign` (sha256)", [py, "-c", _CLI, "sign", str(model)])
        row("securenb CLI `verify` (sha256)", [py, "-c", _CLI, "verify", str(model)])
        with _agent(root, env):
            for op in ("sign", "verify"):
                row(f"securenb {op} (sha256) through the agent",
                    [py, "-c", _SECURENB, op, str(model), "sha256", "agent"])
    _report(rows, unlock, labels)


@contextlib.contextmanager
def _agent(root: Path, env: dict[str, str]) -> Iterator[None]:
    """A `securenb agent` for the workspace at ``root``, passphrase through a pipe."""
    from securenb.signing.remote import agent_socket

    clean = {k: v for k, v in env.items() if k != "SECURENB_KEY_PASSPHRASE"}
    agent = subprocess.Popen([sys.executable, "-c", _CLI, "agent", "start", "--passphrase-fd",
                              "0"], cwd=root, env=clean, stdin=subprocess.PIPE,
                             stderr=subprocess.DEVNULL)
    assert agent.stdin is not None
    agent.stdin.write(PASSPHRASE.encode() + b"\n")
    agent.stdin.close()
    while not agent_socket(root).is_socket():
        if agent.poll() is not None:
            raise RuntimeError("the agent did not start")
        time.sleep(0.05)
    try:
        yield
    finally:
        agent.terminate()
        agent.wait(timeout=60)


def _report(rows: list[Row], unlock: list[float], labels: list[str]) -> None:
    print("| tool | model | wall s | op s | GiB/s | peak RSS MB |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(r.line())
    print(f"\nkey unlocks (record, + release to sign; scrypt N=2^16, r=8 each; not in `op`): "
          f"{min(unlock):.2f}-{max(unlock):.2f} s")

    def speed(tool: str, model: str) -> float:
        r = next(r for r in rows if r.tool == tool and r.model == model)
        return r.size / GIB / (r.op if r.op is not None else r.wall)

    for model in labels:
        sha = speed("securenb sign (sha256)", model)
        print(f"\n{model}: securenb sign SHA-256 {sha:.2f} GiB/s = "
              f"{sha / speed('sha256sum (coreutils)', model):.2f}x sha256sum, "
              f"{sha / speed('Python hashlib SHA-256 (1 MiB reads)', model):.2f}x hashlib; "
              f"verify {speed('securenb verify (sha256)', model) / sha:.2f}x sign; "
              f"BLAKE3 sign {speed('securenb sign (blake3)', model) / sha:.2f}x SHA-256")
    late = "after the imports"
    ours = [r.rss_mb for r in rows if r.tool.startswith("securenb") and late not in r.tool]
    after = [r.rss_mb for r in rows if r.tool.startswith("securenb") and late in r.tool]
    print(f"securenb peak RSS: {min(ours):.0f}-{max(ours):.0f} MB (goal: <= 100); with the key "
          f"unlocked {late}: {min(after):.0f}-{max(after):.0f} MB")
    for model in labels:
        local = speed("securenb sign (sha256)", model)
        agent = speed("securenb sign (sha256) through the agent", model)
        print(f"{model}: signing through the agent {agent:.2f} GiB/s = {agent / local:.2f}x "
              f"signing in the process ({local:.2f} GiB/s)")


if __name__ == "__main__":
    main()
