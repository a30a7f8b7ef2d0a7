"""How signing reads and writes files (issue 11.6, 10.6): once, never through a link,
nothing left behind by a killed process, and a signed artifact is known to `show`.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from securenb.cli.main import cli
from securenb.core.workspace import Workspace
from securenb.errors import SecurenbError
from securenb.signing import SignRequest, hashing, sign, verify


def test_signature_file_is_read_once_and_must_be_regular(workspace: Workspace) -> None:
    """A FIFO (or anything that answers differently on a second read) is refused."""
    model = workspace.root / "model.bin"
    model.write_bytes(b"weights")
    sign(workspace, SignRequest(str(model)))
    bundle = (workspace.root / "model.bin.sig").read_bytes()
    sig = workspace.root / "model.bin.sig"
    sig.unlink()
    os.mkfifo(sig)
    opened = []

    def serve() -> None:
        while True:  # each open gets an answer: the first the bundle, later ones another
            with open(sig, "wb") as fh:  # blocks until the verifier opens it
                fh.write(bundle if not opened else b'{"verificationMaterial": {}}')
                opened.append(1)

    threading.Thread(target=serve, daemon=True).start()
    try:
        with pytest.raises(SecurenbError, match="not a regular file"):
            verify(workspace, model)
    finally:  # release the writer if it is still waiting
        fd = os.open(sig, os.O_RDONLY | os.O_NONBLOCK)
        os.close(fd)
    assert len(opened) <= 2  # (the last: the release above)


def test_a_file_swapped_for_a_link_after_listing_is_not_followed(
        workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    """Deterministic race: the model is listed (lstat), then a link replaces a file."""
    secret = workspace.root / "secret.txt"
    secret.write_text("not part of the model")
    model = workspace.root / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(b"weights")
    listed = hashing.list_files

    def list_then_swap(*args: object, **kwargs: object) -> list[hashing.ModelFile]:
        files = listed(*args, **kwargs)  # type: ignore[arg-type]
        (model / "weights.bin").unlink()
        (model / "weights.bin").symlink_to(secret)
        return files

    monkeypatch.setattr(hashing, "list_files", list_then_swap)
    with pytest.raises(SecurenbError, match="symbolic link"):
        sign(workspace, SignRequest(str(model)))
    assert not (workspace.root / "model.sig").exists()


def test_sign_records_the_artifact(workspace: Workspace) -> None:
    model = workspace.root / "model.bin"
    model.write_bytes(b"weights")
    runner = CliRunner()
    assert runner.invoke(cli, ["-C", str(workspace.root), "sign", "model.bin"]).exit_code == 0
    shown = runner.invoke(cli, ["-C", str(workspace.root), "show", "model.bin", "--json"])
    assert shown.exit_code == 0, shown.output
    assert "signature/v1" in shown.output


_KILLED = """
import os, signal, sys
from securenb import data
def die(done, total=None):
    if done:
        os.kill(os.getpid(), signal.SIGKILL)
data.decrypt(sys.argv[1], sys.argv[2], kek="env:TEST_KEK", progress=die)
"""


def test_killed_decrypt_leaves_no_plaintext(tmp_path: Path) -> None:
    from securenb import data

    env = {**os.environ, "TEST_KEK": base64.b64encode(os.urandom(32)).decode()}
    os.environ["TEST_KEK"] = env["TEST_KEK"]
    try:
        plaintext = os.urandom(1 << 20)
        (tmp_path / "train.bin").write_bytes(plaintext)
        enc = data.encrypt(tmp_path / "train.bin", kek="env:TEST_KEK",
                           algorithm="AES256_GCM_HKDF_4KB").ciphertext
    finally:
        del os.environ["TEST_KEK"]
    (tmp_path / "train.bin").unlink()
    out = tmp_path / "out"
    out.mkdir()
    run = subprocess.run([sys.executable, "-c", _KILLED, str(enc), str(out / "train.bin")],
                         env=env, capture_output=True, check=False, timeout=120)
    assert run.returncode == -9, run.stderr
    left = [p for p in out.iterdir()]
    assert not left, f"a killed decrypt left {left}"
    assert not any(plaintext[:4096] in p.read_bytes() for p in tmp_path.rglob("*")
                   if p.is_file())
