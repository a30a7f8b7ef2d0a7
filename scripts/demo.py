"""The end-to-end example pipeline on the embedded default (a local .securenb/ workspace).

Run by `make demo`. Each step is the CLI command a user would type, so the demo
doubles as a smoke test of the quick start:
  init workspace -> encrypt the training data -> train a small model in a safe
  format -> record it -> scan it (deny-by-default) -> sign it (OpenSSF model
  signing) -> verify it -> attest its provenance (SLSA, DSSE-signed) -> show
  it with its attestations -> verify the audit log offline.
"""

from __future__ import annotations

import os
import secrets
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "demo-output"
PASSPHRASE_FILE = ROOT / ".securenb-demo-passphrase"
KEK_FILE = ROOT / ".securenb-demo-kek"
SECURENB = [str(Path(sys.executable).parent / "securenb")]


def demo_passphrase() -> str:
    """$SECURENB_KEY_PASSPHRASE, or a random one kept in a 0600 file for this demo only."""
    if value := os.environ.get("SECURENB_KEY_PASSPHRASE"):
        return value
    if not PASSPHRASE_FILE.exists():
        fd = os.open(PASSPHRASE_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(24))
    return PASSPHRASE_FILE.read_text().strip()


def step(title: str, *args: str, check: bool = True) -> None:
    print(f"\n\033[1m== {title}\033[0m\n$ securenb {shlex.join(args)}", flush=True)
    subprocess.run([*SECURENB, *args], cwd=ROOT, check=check)


def make_training_data(path: Path) -> None:
    """Synthetic data (nothing is downloaded): four features and a label."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 4))
    y = (x @ np.array([1.5, -2.0, 0.5, 0.0]) + rng.normal(scale=0.5, size=2000) > 0).astype(int)
    frame = pd.DataFrame(x, columns=["f0", "f1", "f2", "f3"]).assign(label=y)
    frame.to_csv(path, index=False)


def train(dataset: Path, kek: str, path: Path) -> dict[str, float]:
    """Fit a tiny logistic regression on the encrypted CSV; save weights as .npy (no pickle)."""
    import numpy as np

    from securenb.data import read_csv

    frame = read_csv(dataset, kek=kek, role="trainer")  # decrypted in memory, schema-checked
    x = frame[["f0", "f1", "f2", "f3"]].to_numpy()
    y = frame["label"].to_numpy(dtype=float)
    w = np.zeros(4)
    for _ in range(300):
        p = 1 / (1 + np.exp(-(x @ w)))
        w -= 0.5 * x.T @ (p - y) / len(y)
    np.save(path, w, allow_pickle=False)
    accuracy = float(((1 / (1 + np.exp(-(x @ w))) > 0.5) == y).mean())
    return {"accuracy": round(accuracy, 4)}


def main() -> None:
    os.environ["SECURENB_KEY_PASSPHRASE"] = demo_passphrase()
    os.chdir(ROOT)
    if not (ROOT / ".securenb" / "config.toml").exists():
        step("create the workspace and its signing key", "init")
    step("what this machine offers", "doctor")

    OUT.mkdir(exist_ok=True)
    kek = f"file:{KEK_FILE.name}"
    if not KEK_FILE.exists():
        step("create a local key-encryption key (0600, git-ignored)", "data", "new-kek", kek)
    plain = OUT / "train.csv"
    make_training_data(plain)
    step("encrypt the training data (Tink streaming AEAD, schema inferred, role-bound)",
         "data", "encrypt", str(plain.relative_to(ROOT)), "--kek", kek, "--role", "trainer",
         "--infer-schema")
    plain.unlink()  # from here on only the ciphertext exists on disk
    dataset = OUT / "train.csv.enc"

    model = OUT / "model.npy"
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    metrics = train(dataset, kek, model)
    print(f"\ntrained {model.relative_to(ROOT)}: {metrics}")
    rel = str(model.relative_to(ROOT))
    step("record the model as an artifact", "record", rel)
    step("scan it: nothing in it may import or call code", "scan", rel)
    step("sign it (OpenSSF model signing, sidecar model.npy.sig)", "sign", rel)
    step("verify it: who signed, when, and is that signer trusted", "verify", rel)

    from securenb.core.attest import Dependency, RunProvenance, Subject
    from securenb.core.store import file_sha256
    from securenb.core.workspace import Workspace

    ws = Workspace.find(ROOT)
    script_digest, _ = file_sha256(Path(__file__))
    data_digest, _ = file_sha256(dataset)
    provenance = RunProvenance(
        build_type="python-script",
        run_id=f"demo-{int(time.time())}",
        started=started,
        finished=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        external_parameters={"script": "scripts/demo.py", "epochs": 300},
        internal_parameters={"metrics": metrics},
    )
    provenance.dependencies += [
        Dependency("file:scripts/demo.py", script_digest, "source"),
        Dependency(f"file:{dataset.relative_to(ROOT)}", data_digest, "training data (encrypted)"),
    ]
    digest, _ = file_sha256(model)
    record = ws.attest(provenance.statement([Subject(model.name, digest)]))
    print(f"\nsigned SLSA provenance for {model.name}: envelope sha256:{record.envelope[:16]}")

    step("show the model, its provenance and signature status", "show", str(model))
    step("verify the audit log offline (Merkle tree + signed checkpoints)", "audit", "verify")
    print("\n\033[32mdemo finished: workspace at .securenb/\033[0m")


if __name__ == "__main__":
    main()
