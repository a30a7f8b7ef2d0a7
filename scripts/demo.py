"""The end-to-end example pipeline on the embedded default (a local .securenb/ workspace).

Run by `make demo`. Each step is the CLI command a user would type, so the demo
doubles as a smoke test of the quick start:
  init workspace -> train a small model in a safe format -> record it ->
  attest its provenance (SLSA, DSSE-signed) -> list + verify attestations ->
  verify the audit log offline.
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


def train(path: Path) -> dict[str, float]:
    """Fit a tiny logistic regression with NumPy; save the weights as .npy (no pickle)."""
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 4))
    y = (x @ np.array([1.5, -2.0, 0.5, 0.0]) + rng.normal(scale=0.5, size=2000) > 0).astype(float)
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
    model = OUT / "model.npy"
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    metrics = train(model)
    print(f"\ntrained {model.relative_to(ROOT)}: {metrics}")
    step("record the model as an artifact", "record", str(model.relative_to(ROOT)))

    from securenb.core.attest import Dependency, RunProvenance, Subject
    from securenb.core.store import file_sha256
    from securenb.core.workspace import Workspace

    ws = Workspace.find(ROOT)
    script_digest, _ = file_sha256(Path(__file__))
    provenance = RunProvenance(
        build_type="python-script",
        run_id=f"demo-{int(time.time())}",
        started=started,
        finished=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        external_parameters={"script": "scripts/demo.py", "epochs": 300},
        internal_parameters={"metrics": metrics},
    )
    provenance.dependencies.append(Dependency("file:scripts/demo.py", script_digest, "source"))
    digest, _ = file_sha256(model)
    record = ws.attest(provenance.statement([Subject(model.name, digest)]))
    print(f"\nsigned SLSA provenance for {model.name}: envelope sha256:{record.envelope[:16]}")

    step("show the model, its provenance and signature status", "show", str(model))
    step("verify the audit log offline (Merkle tree + signed checkpoints)", "audit", "verify")
    print("\n\033[32mdemo finished: workspace at .securenb/\033[0m")


if __name__ == "__main__":
    main()
