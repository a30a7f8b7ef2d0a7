"""The end-to-end example pipeline on the embedded default: a local .securenb/
workspace and the bwrap sandbox. Run by `make demo`.

CLI:      init the workspace -> check the machine -> encrypt the training data
Notebook: notebooks/02-secure-training-pipeline.ipynb, executed in a real kernel:
          train inside bwrap (%%secure_train, plaintext only in the sandbox) ->
          %scan_model -> %sign_model -> %verify_model -> signed SLSA provenance
CLI:      verify the model as a recipient would -> show it with its attestations ->
          verify the audit log offline
"""

from __future__ import annotations

import os
import secrets
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "demo-output"
NOTEBOOK = ROOT / "notebooks" / "02-secure-training-pipeline.ipynb"
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


def title(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m", flush=True)


def step(text: str, *args: str) -> None:
    title(text)
    print(f"$ securenb {shlex.join(args)}", flush=True)
    subprocess.run([*SECURENB, *args], cwd=ROOT, check=True)


def make_training_data(path: Path) -> None:
    """Synthetic data (nothing is downloaded): four features and a label."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 4))
    y = (x @ np.array([1.5, -2.0, 0.5, 0.0]) + rng.normal(scale=0.5, size=2000) > 0).astype(int)
    pd.DataFrame(x, columns=["f0", "f1", "f2", "f3"]).assign(label=y).to_csv(path, index=False)


def run_notebook(path: Path) -> None:
    """Execute ``path`` in a real kernel of this environment and print what each cell shows."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(ROOT)}})
    client.km = client.create_kernel_manager()
    client.km.kernel_cmd = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    client.execute()
    for cell in nb.cells:
        if cell.cell_type == "markdown" and cell.source.startswith("## "):
            title(cell.source.splitlines()[0].removeprefix("## "))
        if cell.cell_type != "code":
            continue
        print(f"\n\033[2mIn: {cell.source.splitlines()[0]}\033[0m")
        for out in cell.outputs:
            text = out.get("text") or out.get("data", {}).get("text/plain", "")
            if text and not text.startswith("ScanReport("):
                print(text.rstrip())


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
    dataset = OUT / "train.csv.enc"
    for stale in (dataset, OUT / "train.csv.enc.manifest.json"):
        stale.unlink(missing_ok=True)
    plain = OUT / "train.csv"
    make_training_data(plain)
    step("encrypt the training data (Tink streaming AEAD, role trainer, schema inferred)",
         "data", "encrypt", str(plain.relative_to(ROOT)), "--kek", kek, "--role", "trainer",
         "--infer-schema")
    plain.unlink()  # from here on only the ciphertext exists on disk

    os.environ.update({
        "SECURENB_EXAMPLE_PROJECT": str(ROOT),
        "SECURENB_EXAMPLE_DATASET": str(dataset.relative_to(ROOT)),
        "SECURENB_KEK_URI": kek,
    })
    title(f"run {NOTEBOOK.relative_to(ROOT)}: train in bwrap, scan, sign, verify")
    run_notebook(NOTEBOOK)

    model = "outputs/model.npy"
    step("verify the model as a recipient would: who signed it, is that signer trusted",
         "verify", model)
    step("show the model with its attestations (provenance, scan, signature)", "show", model)
    step("verify the audit log offline (Merkle tree + signed checkpoints)", "audit", "verify")
    print("\n\033[32mdemo finished: workspace at .securenb/, model at outputs/model.npy\033[0m")


if __name__ == "__main__":
    main()
