"""Dataset key release through the server against staging in the kernel (the old path).

What `%%secure_train --inputs data=x.enc` costs before the sandbox reads its copy:
the role check and unwrap (`dataset-check`), then decrypting the dataset as a
stream and re-encrypting it under a one-time key into the sandbox's inbox
(`dataset-stage`). Reference: the same work in this process, as a kernel did it
before (``transfer.dataset_keys`` with the KEK + ``transfer.stage_dataset``).
The server is a real `jupyter server` with the extension (no RBAC: the role
named is checked), asked over its kernel socket as a kernel it started.
Best of 5 each (``--repeat``), alternating; my goal: within 10% of the local path.

    python -m benchmarks server_datasets [--size-mib 100] [--repeat 5]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import securenb.data as data
from securenb.core.workspace import Workspace
from securenb.data.kek import LocalKek
from securenb.isolation import transfer
from securenb.isolation.runtime import base_dir
from securenb.signing.remote import KernelIdentity, RemoteSigner

PASSPHRASE = "benchmark passphrase"  # a throwaway workspace's passphrase
TOKEN = "bench-token"  # a throwaway server's token


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _post(url: str, body: object) -> dict[str, str]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Authorization": f"token {TOKEN}"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return dict(json.loads(response.read()))


def _start(root: Path, base: Path, kek: bytes) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(base / "rt"),
           "JUPYTER_CONFIG_DIR": str(base / "jc"), "JUPYTER_DATA_DIR": str(base / "jd"),
           "SECURENB_KEK": base64.b64encode(kek).decode(), "SECURENB_KEY_PASSPHRASE": PASSPHRASE}
    env.pop("SECURENB_KEK_URI", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter_server", f"--ServerApp.port={port}",
         "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={TOKEN}",
         f"--ServerApp.root_dir={root}", "--ServerApp.open_browser=False", "--allow-root",
         "--ServerApp.log_level=WARN"],
        env=env, cwd=root, stdout=(base / "server.log").open("wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{url}/api/status?token={TOKEN}", timeout=5).close()
            return server, url
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((base / "server.log").read_text()) from None
            time.sleep(0.2)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks server_datasets")
    parser.add_argument("--size-mib", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        root = base / "project"
        (root / "data").mkdir(parents=True)
        os.environ["XDG_CONFIG_HOME"] = str(base / "xdg")
        Workspace.init(root, PASSPHRASE)
        material = os.urandom(32)
        kek = LocalKek(material, "env:SECURENB_KEK")
        plain = root / "data" / "x.bin"
        plain.write_bytes(os.urandom(args.size_mib << 20))
        data.encrypt(plain, kek=kek, roles=["trainer"])
        plain.unlink()
        path = root / "data" / "x.bin.enc"
        server, url = _start(root, base, material)
        os.environ["SECURENB_KEK"] = base64.b64encode(material).decode()  # the local path's
        inbox = Path(tempfile.mkdtemp(prefix="snb-", dir=base_dir())) / "inbox" / "datasets"
        try:
            kernel_id = _post(f"{url}/api/kernels", {"name": "python3"})["id"]
            discovery = json.loads((base / "rt" / f"securenb-signer-{server.pid}.json")
                                   .read_text())
            identity = KernelIdentity.from_connection_file(
                base / "rt" / f"kernel-{kernel_id}.json")
            remote = RemoteSigner(Path(discovery["socket"]), identity)
            (ds,) = transfer.open_datasets([("data", "data=x.bin.enc", path)],
                                           transfer.DigestCache())
            local = through = float("inf")
            for _ in range(args.repeat):
                shutil.rmtree(inbox, ignore_errors=True)
                inbox.mkdir(parents=True, mode=0o755)
                start = time.perf_counter()
                keys = transfer.dataset_keys([ds], "trainer", "env:SECURENB_KEK")
                transfer.stage_dataset(ds, keys["data"], inbox)
                local = min(local, time.perf_counter() - start)
                start = time.perf_counter()
                remote._call("/v1/dataset-check", {"path": str(path), "role": "trainer"})
                remote._call("/v1/dataset-stage", {"path": str(path), "role": "trainer",
                                                   "folder": str(inbox)})
                through = min(through, time.perf_counter() - start)
            ratio = through / local
            print(f"stage a {args.size_mib} MiB dataset for a sandbox (best of {args.repeat}): "
                  f"in the kernel {local:.3f} s ({args.size_mib / local:.0f} MiB/s), through the "
                  f"server {through:.3f} s ({args.size_mib / through:.0f} MiB/s), ratio "
                  f"{ratio:.3f} (goal <= 1.10: {'OK' if ratio <= 1.10 else 'MISSED'})")
        finally:
            shutil.rmtree(inbox.parent.parent, ignore_errors=True)
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main(sys.argv[1:])
