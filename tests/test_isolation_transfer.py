"""The data boundary without a sandbox: safe formats, output vetting, checkpoints, redaction."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from securenb.isolation import transfer
from securenb.isolation.errors import IsolationError, UnsafeOutputError
from securenb.isolation.outbox import collect
from securenb.isolation.secrets import Redactor, parse_ref, resolve
from securenb.sandbox import formats
from securenb.sandbox.checkpoint import load_checkpoint, read_manifest, save_checkpoint


@pytest.mark.parametrize("value", [
    np.arange(4.0), pd.DataFrame({"a": [1, 2]}), torch.ones(2), {"w": torch.zeros(2)},
    {"a": np.ones(2)}, {"lr": 0.1, "layers": [1, 2]}, "text", 3,
])
def test_safe_formats_round_trip(tmp_path: Path, value: object) -> None:
    path = formats.save(value, tmp_path / "v")
    kind = formats.kind_of_bytes(path.suffix, path.read_bytes())
    assert kind == formats.kind_of(value)
    loaded = formats.load(path, kind)
    again = formats.load_bytes(path.read_bytes(), kind)
    assert type(again) is type(loaded)
    if isinstance(value, np.ndarray):
        assert np.array_equal(loaded, value)
    elif isinstance(value, pd.DataFrame):
        assert loaded.equals(value)
    elif isinstance(value, torch.Tensor):
        assert torch.equal(loaded, value)
    elif isinstance(value, dict) and not isinstance(next(iter(value.values())), (float, int)):
        assert set(loaded) == set(value)
    else:
        assert loaded == value


@pytest.mark.parametrize("value", [object(), np.array([{}], dtype=object), {1: "a"},
                                   torch.nn.Linear(1, 1), float("nan")])
def test_unsafe_values_have_no_format(value: object) -> None:
    with pytest.raises(formats.UnsafeValueError):
        formats.kind_of(value)


def test_loader_refuses_a_mismatched_extension(tmp_path: Path) -> None:
    path = formats.save(np.ones(2), tmp_path / "v")
    with pytest.raises(formats.UnsafeValueError):
        formats.load(path, "pandas")


def _write_outputs(root: Path) -> None:
    np.save(root / "ok.npy", np.ones(2))
    pd.DataFrame({"a": [1]}).to_parquet(root / "ok.parquet")
    formats.save({"w": torch.ones(1)}, root / "ok")
    (root / "ok.json").write_text('{"a": 1}')
    (root / "notes.md").write_text("# fine\n")
    (root / "model.pkl").write_bytes(pickle.dumps([1]))
    torch.save({"w": torch.ones(1)}, root / "model.pt")
    np.save(root / "obj.npy", np.array([{}], dtype=object), allow_pickle=True)
    (root / "fake.safetensors").write_bytes(pickle.dumps([1]))
    (root / "bad.json").write_text("{not json")
    (root / "blob.bin").write_bytes(os.urandom(64))
    os.symlink("/etc/hostname", root / "link.txt")
    os.mkfifo(root / "fifo.txt")
    (root / "sub").mkdir()
    os.symlink("/etc", root / "linkdir")


def _collected(outbox: Path, dest: Path) -> list[transfer.OutputFile]:
    """What %%secure_train does after a run: copy out, then classify the host copies."""
    dest.mkdir(exist_ok=True)
    done = collect(outbox, dest)
    return transfer.vet(done.files) + [transfer.OutputFile(p, "", 0, "rejected", why)
                                       for p, why in done.refused]


def test_outputs_are_classified_by_content(tmp_path: Path) -> None:
    (tmp_path / "box").mkdir()
    _write_outputs(tmp_path / "box")
    found = {o.path.name: o for o in _collected(tmp_path / "box", tmp_path / "out")}
    accepted = {n for n, o in found.items() if o.format != "rejected"}
    assert accepted == {"ok.npy", "ok.parquet", "ok.safetensors", "ok.json", "notes.md"}
    for name in ("model.pkl", "model.pt", "obj.npy", "fake.safetensors", "bad.json",
                 "blob.bin", "link.txt", "fifo.txt", "linkdir"):
        assert found[name].format == "rejected", name
    assert "object array" in found["obj.npy"].reason
    assert "not a plain file" in found["link.txt"].reason


def test_digest_cache_skips_unchanged_files(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("one")
    cache = transfer.DigestCache()
    first = cache.digest_path(tmp_path / "a.txt")
    assert cache.entries and cache.digest_path(tmp_path / "a.txt") == first
    (tmp_path / "a.txt").write_text("two!")
    assert cache.digest_path(tmp_path / "a.txt") != first


def test_load_variable_uses_safe_loaders_only(tmp_path: Path) -> None:
    folder = tmp_path / "variables"
    folder.mkdir()
    np.save(folder / "x.npy", np.arange(3))
    written = {folder / "x.npy": transfer.DigestCache().digest_path(folder / "x.npy")}
    assert list(transfer.load_variable(tmp_path, "x", written)) == [0, 1, 2]
    (folder / "y.json").symlink_to("/etc/hostname")
    with pytest.raises(UnsafeOutputError):
        transfer.load_variable(tmp_path, "y", {folder / "y.json": "0" * 64})
    with pytest.raises(IsolationError, match="expected this run to write one file"):
        transfer.load_variable(tmp_path, "missing", written)
    (folder / "z.json").write_text('"from an earlier run"')  # not written by this run
    with pytest.raises(IsolationError, match="expected this run to write one file"):
        transfer.load_variable(tmp_path, "z", written)


def test_scan_does_not_follow_a_linked_folder(tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir()
    (private / "notes.txt").write_text("private\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / "sub").symlink_to(private)
    found = _collected(out, tmp_path / "dest")
    assert [(o.path.name, o.format) for o in found] == [("sub", "rejected")]
    assert not (tmp_path / "dest" / "sub").exists() and not (out / "sub").is_symlink()


def test_stage_variables_refuses_unsafe_values(tmp_path: Path) -> None:
    staged = transfer.stage_variables({"a": np.ones(2)}, tmp_path / "in")
    assert staged[0].kind == "numpy" and len(staged[0].sha256) == 64
    with pytest.raises(IsolationError, match="--inputs b"):
        transfer.stage_variables({"b": object()}, tmp_path / "in")


def test_checkpoint_round_trip_and_tamper_detection(tmp_path: Path) -> None:
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.Adam(model.parameters())
    model(torch.ones(1, 2)).sum().backward()
    opt.step()
    folder = save_checkpoint({"model": model, "opt": opt.state_dict(), "epoch": 3}, 7, tmp_path)
    assert folder.name == "step-000000007"
    manifest = read_manifest(folder)
    assert manifest is not None and manifest["step"] == 7
    restored = load_checkpoint(folder, manifest["files"])
    assert torch.equal(restored.state["model"]["weight"], model.weight.detach())
    assert restored.state["opt"]["state"][0]["step"] == opt.state_dict()["state"][0]["step"]
    assert restored.state["epoch"] == 3
    state = folder / "state.safetensors"
    state.chmod(0o644)
    state.write_bytes(state.read_bytes() + b" ")
    assert read_manifest(folder) is None
    with pytest.raises(ValueError, match="changed since it was verified"):
        load_checkpoint(folder, manifest["files"])


def test_newest_verified_checkpoint_needs_recorded_digests(tmp_path: Path) -> None:
    for step in range(3):
        save_checkpoint({"w": np.full(2, step)}, step, tmp_path)
    cache = transfer.DigestCache()

    def rel(p: Path) -> str:
        return p.relative_to(tmp_path).as_posix()

    recorded = {(rel(p), cache.digest_path(p)): "run-1"
                for p in (tmp_path / "checkpoints").rglob("*") if p.is_file()}
    assert transfer.newest_verified_checkpoint(tmp_path, recorded, rel)[0]["step"] == 2
    newest = tmp_path / "checkpoints" / "step-000000002"
    manifest = json.loads((newest / "MANIFEST.json").read_text())
    forged = newest / "state.safetensors"
    forged.chmod(0o644)
    formats.save({"w": np.full(2, 99)}, newest / "forged")
    os.replace(newest / "forged.safetensors", forged)
    manifest["files"]["state.safetensors"] = cache.digest_path(forged)
    (newest / "MANIFEST.json").chmod(0o644)
    (newest / "MANIFEST.json").write_text(json.dumps(manifest))  # consistent, but not recorded
    found, skipped = transfer.newest_verified_checkpoint(tmp_path, recorded, rel)
    assert found is not None and found["step"] == 1
    assert skipped == ["step-000000002: not recorded by the run that wrote it (written or "
                       "changed outside a run)"]


def test_redactor_handles_values_split_across_chunks() -> None:
    redact = Redactor({"TOKEN": "abcdef123", "SHORT": "zzzz"})
    outputs = [o for c in ["x abc", "def", "123 y zz", "zz", "z"] for o in redact.feed("stdout", c)]
    text = "".join(content["text"] for _, content in outputs + redact.flush())
    assert "abcdef123" not in text and "zzzz" not in text
    assert text == "x [REDACTED:TOKEN] y [REDACTED:SHORT]z"
    assert redact.value({"data": {"text/plain": ["abcdef123"]}}) == {
        "data": {"text/plain": ["[REDACTED:TOKEN]"]}}


def test_secret_references(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse_ref("TOKEN").source == "env"
    ref = parse_ref(f"TOKEN=file:{tmp_path / 't'}")
    (tmp_path / "t").write_text("from-a-file\n")
    assert resolve(ref) == "from-a-file"
    monkeypatch.setenv("OTHER", "from-env-var")
    assert resolve(parse_ref("TOKEN=env:OTHER")) == "from-env-var"
    for bad in ("1BAD", "T=ftp:x", "T=env:"):
        with pytest.raises(IsolationError):
            parse_ref(bad)
    monkeypatch.setenv("TINY", "ab")
    with pytest.raises(IsolationError, match="shorter than"):
        resolve(parse_ref("TINY"))
    monkeypatch.delenv("UNSET_SECRET", raising=False)
    with pytest.raises(IsolationError, match="UNSET_SECRET is unset"):
        resolve(parse_ref("UNSET_SECRET"))


def test_keyring_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    import keyring

    monkeypatch.setattr(keyring, "get_password",
                        lambda service, name: "kr-value" if (service, name) == (
                            "securenb", "hf") else None)
    assert resolve(parse_ref("HF=keyring:hf")) == "kr-value"
    with pytest.raises(IsolationError, match="no keyring entry"):
        resolve(parse_ref("HF=keyring:other"))
