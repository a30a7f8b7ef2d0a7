"""Encrypted datasets: ours vs Fernet (the SecureDataLoader recipe) vs the tink package vs a copy.

Goals (issue 6): in memory >= 4 GB/s per core; file to file >= 90% of a plain
copy; peak memory <= 64 MiB whatever the file size. GB/s are plaintext bytes
(1e9) per second, best of --repeat runs. File-to-file runs include fsync (the
copy too) and start with no output file; each runs in its own process, whose
peak RSS is measured with getrusage in a grandchild (a child's own ru_maxrss
on Linux starts at its parent's high-water mark).

    python -m benchmarks.bench_data [--size-mib 512] [--repeat 3] [--dir /tmp] [--skip-fernet]
"""

from __future__ import annotations

import argparse
import base64
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CHUNK = 1 << 20
KEK_ENV = "BENCH_KEK"
TINK_KEY_ENV = "BENCH_TINK_KEY"
FERNET_ENV = "BENCH_FERNET_KEY"

LAUNCHER = """
import resource, subprocess, sys
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
sys.stderr.write(done.stderr)
print(done.stdout.strip(), resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024)
sys.exit(done.returncode)
"""


# -- the file-to-file operations, each run in a fresh process ------------------------------------

class _SyncOnClose(io.FileIO):
    """tink closes its destination itself: make that close durable like the others."""

    def close(self) -> None:
        if not self.closed:
            os.fsync(self.fileno())
        super().close()


def _tink_primitive() -> Any:
    from tink import streaming_aead

    sys.path.insert(0, str(ROOT / "tests"))
    from test_data_streaming import tink_primitive  # the same keyset the interop tests build

    from securenb.data.streaming_aead import AES256_GCM_HKDF_1MB

    streaming_aead.register()
    return tink_primitive(base64.b64decode(os.environ[TINK_KEY_ENV]), AES256_GCM_HKDF_1MB)


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _copy(src: Path, dst: Path) -> None:
    shutil.copyfile(src, dst)
    _fsync_path(dst)
    _fsync_path(dst.parent)


def _ours_encrypt(src: Path, dst: Path) -> None:
    from securenb.data import encrypt

    encrypt(src, dst, kek=f"env:{KEK_ENV}")


def _ours_decrypt(src: Path, dst: Path) -> None:
    from securenb.data import decrypt

    decrypt(src, dst)


def _tink_encrypt(src: Path, dst: Path) -> None:
    primitive = _tink_primitive()
    with open(src, "rb") as fh, primitive.new_encrypting_stream(_SyncOnClose(dst, "w"), b"") as out:
        while chunk := fh.read(CHUNK):
            out.write(chunk)


def _tink_decrypt(src: Path, dst: Path) -> None:
    primitive = _tink_primitive()
    with primitive.new_decrypting_stream(open(src, "rb"), b"") as stream, open(dst, "wb") as out:
        while chunk := stream.read(CHUNK):
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())


def _fernet(encrypt: bool) -> Callable[[Path, Path], None]:
    def run(src: Path, dst: Path) -> None:
        from cryptography.fernet import Fernet

        fernet = Fernet(os.environ[FERNET_ENV].encode())
        data = src.read_bytes()
        result = fernet.encrypt(data) if encrypt else fernet.decrypt(data)
        with open(dst, "wb") as out:
            out.write(result)
            out.flush()
            os.fsync(out.fileno())

    return run


OPERATIONS: dict[str, Callable[[Path, Path], None]] = {
    "copy": _copy,
    "ours-encrypt": _ours_encrypt,
    "ours-decrypt": _ours_decrypt,
    "tink-encrypt": _tink_encrypt,
    "tink-decrypt": _tink_decrypt,
    "fernet-encrypt": _fernet(True),
    "fernet-decrypt": _fernet(False),
}


def _child(op: str, src: Path, dst: Path, repeat: int) -> None:
    best = float("inf")
    for _ in range(repeat):
        dst.unlink(missing_ok=True)
        os.sync()  # start each run from a quiet disk (no writeback or discard in flight)
        time.sleep(0.5)
        start = time.perf_counter()
        OPERATIONS[op](src, dst)
        best = min(best, time.perf_counter() - start)
    print(f"{best:.6f}")


def _file_to_file(
    op: str, src: Path, dst: Path, repeat: int, env: dict[str, str]
) -> tuple[float, int]:
    """(best seconds, peak MiB) of ``op`` in a fresh process."""
    command = [sys.executable, "-m", "benchmarks.bench_data", "--child", op, str(src), str(dst),
               "--repeat", str(repeat)]
    done = subprocess.run([sys.executable, "-c", LAUNCHER, *command], cwd=ROOT,
                          env={**os.environ, **env}, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"{op} failed:\n{done.stderr}")
    seconds, peak = done.stdout.split()
    return float(seconds), int(peak)


# -- in memory -------------------------------------------------------------------------------------

def _best(repeat: int, fn: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _in_memory(plaintext: bytes, repeat: int, skip_fernet: bool) -> dict[str, tuple[float, float]]:
    from securenb.data import streaming_aead as sa

    key = base64.b64decode(os.environ[TINK_KEY_ENV])
    params = sa.AES256_GCM_HKDF_1MB
    ct = bytearray(params.ciphertext_size(len(plaintext)))
    back = bytearray(len(plaintext))
    results = {
        "ours": (_best(repeat, lambda: sa.encrypt_into(ct, plaintext, key)),
                 _best(repeat, lambda: sa.decrypt_into(back, ct, key))),
        "ours, allocating the output": (
            _best(repeat, lambda: sa.encrypt_bytes(plaintext, key)),
            _best(repeat, lambda: sa.decrypt_bytes(ct, key))),
    }
    assert back == plaintext

    primitive = _tink_primitive()
    view = memoryview(plaintext)

    class Keep(io.BytesIO):
        def close(self) -> None:
            pass

    sink = Keep()

    def tink_encrypt() -> None:
        sink.seek(0)
        sink.truncate()
        with primitive.new_encrypting_stream(sink, b"") as stream:
            for i in range(0, len(view), CHUNK):
                stream.write(view[i : i + CHUNK])

    def tink_decrypt() -> None:
        with primitive.new_decrypting_stream(io.BytesIO(sink.getbuffer()), b"") as stream:
            while stream.read(CHUNK):
                pass

    results["tink package"] = (_best(repeat, tink_encrypt), _best(repeat, tink_decrypt))
    if not skip_fernet:
        from cryptography.fernet import Fernet

        fernet = Fernet(os.environ[FERNET_ENV].encode())
        token = fernet.encrypt(plaintext)
        results["Fernet (recipe)"] = (_best(1, lambda: fernet.encrypt(plaintext)),
                                      _best(1, lambda: fernet.decrypt(token)))
    return results


# -- report ----------------------------------------------------------------------------------------

def _gbps(size: int, seconds: float) -> float:
    return size / seconds / 1e9


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None, help="Where the files go.")
    parser.add_argument("--skip-fernet", action="store_true", help="Fernet is slow (~4x RAM).")
    parser.add_argument("--child", nargs=3, metavar=("OP", "SRC", "DST"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        op, src, dst = args.child
        _child(op, Path(src), Path(dst), args.repeat)
        return

    from cryptography.fernet import Fernet

    size = args.size_mib << 20
    env = {
        KEK_ENV: base64.b64encode(os.urandom(32)).decode(),
        TINK_KEY_ENV: base64.b64encode(os.urandom(32)).decode(),
        FERNET_ENV: Fernet.generate_key().decode(),
    }
    os.environ.update(env)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        folder = Path(tmp)
        src = folder / "data.bin"
        with open(src, "wb") as fh:
            for _ in range(size // CHUNK):
                fh.write(os.urandom(CHUNK))
        files: dict[str, tuple[float, int]] = {}
        pairs = [("copy", src, folder / "copy.bin"),
                 ("ours-encrypt", src, folder / "ours.enc"),
                 ("ours-decrypt", folder / "ours.enc", folder / "ours.out"),
                 ("tink-encrypt", src, folder / "tink.enc"),
                 ("tink-decrypt", folder / "tink.enc", folder / "tink.out")]
        if not args.skip_fernet:
            pairs += [("fernet-encrypt", src, folder / "fernet.enc"),
                      ("fernet-decrypt", folder / "fernet.enc", folder / "fernet.out")]
        for op, a, b in pairs:
            repeat = 1 if op.startswith("fernet") else args.repeat
            files[op] = _file_to_file(op, a, b, repeat, env)
            if op.endswith("decrypt"):
                assert b.stat().st_size == size, op
        memory = _in_memory(src.read_bytes(), args.repeat, args.skip_fernet)

    copy_s, copy_peak = files["copy"]
    print(f"{args.size_mib} MiB, best of {args.repeat} (Fernet: 1), {os.cpu_count()} cores; "
          "GB/s of plaintext")
    header = (f"{'method':<30} {'mem enc':>8} {'mem dec':>8} {'file enc':>9} {'file dec':>9} "
              f"{'enc/copy':>9} {'dec/copy':>9} {'peak enc':>9} {'peak dec':>9}")
    print(header)
    print("-" * len(header))
    for label, key in [("ours (securenb.data)", "ours"), ("tink package", "tink"),
                       ("Fernet (recipe)", "fernet")]:
        if f"{key}-encrypt" not in files:
            continue
        enc_s, enc_peak = files[f"{key}-encrypt"]
        dec_s, dec_peak = files[f"{key}-decrypt"]
        mem = memory["ours" if key == "ours" else {"tink": "tink package",
                                                   "fernet": "Fernet (recipe)"}[key]]
        print(f"{label:<30} {_gbps(size, mem[0]):>8.2f} {_gbps(size, mem[1]):>8.2f} "
              f"{_gbps(size, enc_s):>9.2f} {_gbps(size, dec_s):>9.2f} "
              f"{copy_s / enc_s:>8.0%} {copy_s / dec_s:>8.0%} "
              f"{enc_peak:>5} MiB {dec_peak:>5} MiB")
    alloc = memory["ours, allocating the output"]
    print(f"{'ours, allocating the output':<30} {_gbps(size, alloc[0]):>8.2f} "
          f"{_gbps(size, alloc[1]):>8.2f}")
    print(f"{'plain copy (copyfile + fsync)':<30} {'-':>8} {'-':>8} {_gbps(size, copy_s):>9.2f} "
          f"{'-':>9} {'100%':>9} {'':>9} {copy_peak:>5} MiB")
    ours_enc, ours_dec = files["ours-encrypt"][0], files["ours-decrypt"][0]
    print()
    for other in ("tink", "fernet"):
        if f"{other}-encrypt" in files:
            o_enc, o_dec = files[f"{other}-encrypt"][0], files[f"{other}-decrypt"][0]
            print(f"file to file, ours vs {other}: encrypt {o_enc / ours_enc:.1f}x, "
                  f"decrypt {o_dec / ours_dec:.1f}x faster")
    mem_enc, mem_dec = (_gbps(size, s) for s in memory["ours"])
    peak = max(files["ours-encrypt"][1], files["ours-decrypt"][1])
    print(f"goals: in memory >= 4 GB/s: {mem_enc:.2f}/{mem_dec:.2f} "
          f"{'met' if min(mem_enc, mem_dec) >= 4 else 'NOT met'}; "
          f"file to file >= 90% of copy: {copy_s / ours_enc:.0%}/{copy_s / ours_dec:.0%} "
          f"{'met' if copy_s / max(ours_enc, ours_dec) >= 0.9 else 'NOT met'}; "
          f"peak <= 64 MiB: {peak} MiB {'met' if peak <= 64 else 'NOT met'}")


if __name__ == "__main__":
    main()
