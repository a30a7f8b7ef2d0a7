"""%%secure_train with encrypted datasets: decrypted only inside a real bwrap sandbox.

The data key is unwrapped in the parent (role checked) and never enters the
sandbox: it gets a copy re-encrypted under a one-time key. The plaintext must
never reach the host's disk, no key a record or an environment. Data policy and
a wrong role fail before any sandbox starts.
"""

from __future__ import annotations

import base64
import io
import os
import stat
import time
import uuid
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from secure_train_support import provenance, train

import securenb.data as data
from securenb.core.workspace import Workspace
from securenb.data.dataset import encrypt_from
from securenb.data.manifest import Column, Schema
from securenb.isolation import transfer
from securenb.isolation.detect import check_bwrap
from securenb.kernel.train_magics import SecureTrainError, SecureTrainMagics

pytestmark = pytest.mark.skipif(not check_bwrap().available, reason=check_bwrap().detail)

KEK_URI = "env:TEST_DATA_KEK"


@pytest.fixture
def magics(shell: InteractiveShell) -> SecureTrainMagics:
    found: SecureTrainMagics = shell.magics_manager.registry["SecureTrainMagics"]
    return found


@pytest.fixture
def ns(shell: InteractiveShell, workspace: Workspace,
       monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv(KEK_URI.removeprefix("env:"), base64.b64encode(os.urandom(32)).decode())
    for name in ("SECURENB_ROLE", "SECURENB_KEK_URI"):
        monkeypatch.delenv(name, raising=False)
    (workspace.root / "data").mkdir()
    shell.user_ns.clear()
    return shell.user_ns


def make_dataset(path: Path, frame: pd.DataFrame, **kwargs: Any) -> data.EncryptResult:
    """Encrypt ``frame`` as CSV straight from memory: no plaintext file is ever written."""
    plain = io.BytesIO(frame.to_csv(index=False).encode())
    return encrypt_from(plain, path, name=path.name.removesuffix(".enc"), kek=KEK_URI, **kwargs)


def files_holding(needles: list[bytes], roots: list[Path], since: float) -> list[str]:
    """Regular files under ``roots`` changed since ``since`` that hold any of ``needles``."""
    hits = []
    for root in roots:
        for folder, _, names in os.walk(root):
            for name in names:
                path = os.path.join(folder, name)
                try:
                    st = os.lstat(path)
                    if not stat.S_ISREG(st.st_mode) or st.st_mtime < since:
                        continue
                    with open(path, "rb") as fh:
                        content = fh.read()
                except OSError:
                    continue
                hits += [f"{path}: {n[:12]!r}" for n in needles if n in content]
    return hits


def test_dataset_is_decrypted_only_inside_the_sandbox(
    shell: InteractiveShell, ns: dict[str, Any], workspace: Workspace, magics: SecureTrainMagics,
    capsys: pytest.CaptureFixture[str],
) -> None:
    since = time.time() - 1
    marker = f"PLAINTEXT-{uuid.uuid4().hex}"
    frame = pd.DataFrame({"x": range(3000), "note": [f"{marker}-{i}" for i in range(3000)]})
    enc = workspace.root / "data" / "train.csv.enc"
    made = make_dataset(enc, frame, roles=("trainer",), schema=data.infer_schema(frame))
    key = data.data_key_for(enc, role="trainer")
    train(shell, "--inputs data=data/train.csv.enc --role trainer "
                 "--outputs total,marked,header,inherited", """
import os, subprocess, sys
import securenb.sandbox as sb
from securenb.sandbox import datasets
df = sb.read_csv("data")
total, marked = int(df.x.sum()), int(df.note.str.startswith("PLAINTEXT-").sum())
with sb.dataset("data") as f:
    header = f.read(7).decode()
inherited = subprocess.run([sys.executable, "-c", "import os; print(sorted(os.environ))"],
                           capture_output=True, text=True).stdout.count("SECURENB_DATA_KEY")
print("key:", datasets._keys["data"].to_secret())
seen = open("/proc/self/environ", "rb").read().hex() + " ".join(
    k.to_secret() for k in datasets._keys.values()) + str(os.path.exists(ORIGINAL))
open(sb.output_dir() / "seen.txt", "w").write(seen)
""".replace("ORIGINAL", repr(str(enc))))
    assert ns["total"] == sum(range(3000)) and ns["marked"] == 3000
    assert ns["header"] == "x,note\n"
    assert ns["inherited"] == 0  # taken out of the environment before the cell ran
    out = capsys.readouterr()
    assert "key: [REDACTED:data key of data]" in out.out
    seen = (workspace.root / "outputs" / "seen.txt").read_text()
    assert key.to_secret() not in seen and key.material.hex() not in seen  # never inside
    assert seen.endswith("False")  # nor the original ciphertext
    (workspace.root / "outputs" / "seen.txt").unlink()  # holds the one-time key
    needles = [marker.encode(), key.material, key.to_secret().encode()]
    kernel = next(iter(magics.trainer._pool.values()))
    roots = [workspace.root, Path("/tmp"), kernel.runtime.path]
    assert files_holding(needles, roots, since) == []
    deps = provenance(workspace)["predicate"]["buildDefinition"]["resolvedDependencies"]
    found = [d for d in deps if d.get("name") == "dataset:data"]
    assert found == [{
        "uri": enc.resolve().as_uri(), "digest": {"sha256": made.ciphertext_sha256},
        "name": "dataset:data",
        "annotations": {"dataset_id": made.dataset_id,
                        "manifest_sha256": data.manifest_of(enc).digest(),
                        "media_type": "text/csv", "kek_id": made.kek_id, "role": "trainer"},
    }]
    entry = [r.entry.to_json() for r in workspace.audit_log.read()
             if r.entry.action == "secure_train.run"][-1]
    assert entry["details"]["datasets"] == [made.dataset_id]
    assert entry["details"]["secrets"] == []


def refused_before_start(shell: InteractiveShell, magics: SecureTrainMagics, ws: Workspace,
                         line: str, match: str) -> None:
    pool = dict(magics.trainer._pool)
    with pytest.raises(UsageError, match=match):
        train(shell, line, "x = 1")
    assert magics.trainer._pool == pool and ws.store.list_runs() == []


def test_wrong_role_fails_before_start(shell: InteractiveShell, ns: dict[str, Any],
                                       workspace: Workspace, magics: SecureTrainMagics,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    make_dataset(workspace.root / "data" / "train.csv.enc", pd.DataFrame({"x": [1]}),
                 roles=("trainer",))
    monkeypatch.setenv("SECURENB_ROLE", "intern")
    refused_before_start(shell, magics, workspace, "--inputs data=data/train.csv.enc",
                         r"dataset 'data'.*role 'intern' may not decrypt.*allowed: trainer")
    monkeypatch.setenv("SECURENB_ROLE", "trainer")  # the option wins over the environment
    refused_before_start(shell, magics, workspace,
                         "--inputs data=data/train.csv.enc --role visitor", "role 'visitor'")


def set_policy(ws: Workspace, **rules: bool) -> None:
    body = "".join(f"{k} = {str(v).lower()}\n" for k, v in rules.items())
    (ws.root / "pyproject.toml").write_text(f"[tool.securenb.data]\n{body}")


def test_require_encrypted_refuses_plain_inputs_before_start(
    shell: InteractiveShell, ns: dict[str, Any], workspace: Workspace, magics: SecureTrainMagics,
) -> None:
    set_policy(workspace, require_encrypted=True)
    folder = workspace.root / "data"
    make_dataset(folder / "train.csv.enc", pd.DataFrame({"x": [1, 2]}))
    (folder / "notes.csv").write_text("x\n1\n")
    rule = r"require_encrypted = true \(\[tool.securenb.data\] in .*pyproject.toml\)"
    refused_before_start(shell, magics, workspace, "--inputs data/notes.csv",
                         rf"--inputs data/notes.csv: .*notes.csv is not encrypted.*{rule}")
    refused_before_start(shell, magics, workspace, "--inputs data",
                         rf"--inputs data: .*data/notes.csv is not encrypted.*{rule}")
    (folder / "notes.csv").unlink()
    assert transfer._plain_files(folder) == []  # a dataset and its manifest pass
    train(shell, "--inputs data/train.csv.enc --outputs total", """
import securenb.sandbox as sb
total = int(sb.read_csv("data/train.csv.enc").x.sum())
""")
    assert ns["total"] == 3


def test_require_validated_fails_before_start_and_checks_on_load(
    shell: InteractiveShell, ns: dict[str, Any], workspace: Workspace, magics: SecureTrainMagics,
    capsys: pytest.CaptureFixture[str],
) -> None:
    set_policy(workspace, require_validated=True)
    frame = pd.DataFrame({"age": [30, 95, 40]})
    make_dataset(workspace.root / "data" / "bare.csv.enc", frame)
    refused_before_start(shell, magics, workspace, "--inputs data=data/bare.csv.enc",
                         r"--inputs data=data/bare.csv.enc: .*has no schema.*"
                         r"require_validated = true \(\[tool.securenb.data\]")
    schema = Schema(columns=(Column(name="age", type="int", max=90),))
    make_dataset(workspace.root / "data" / "ages.csv.enc", frame, schema=schema)
    with pytest.raises(SecureTrainError) as info:
        train(shell, "--inputs data=data/ages.csv.enc", """
import securenb.sandbox as sb
try:
    sb.dataset("data")
except PermissionError as exc:
    print("raw:", exc)
sb.read_csv("data")
""")
    rendered = "\n".join(info.value._render_traceback_())
    assert "DataValidationError" in rendered and "column 'age': rule max=90 broken" in rendered
    assert "require_validated = true: read it with read_csv" in capsys.readouterr().out
