"""`safe_load`: loads only SAFE files, through loaders that enforce the same allowlist."""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
import torch

from securenb.scan import Allowlist, ScanRefusedError, safe_load
from securenb.scan.loading import RestrictedUnpickler


class Touch:
    """Would create ``path`` if it ever ran."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (f"touch {self.path}",)


def test_torch_files(tmp_path: Path) -> None:
    net = torch.nn.Linear(3, 2)
    path = tmp_path / "sd.pt"
    torch.save(net.state_dict(), path)
    loaded = safe_load(path)
    assert torch.equal(loaded["weight"], net.weight)
    legacy = tmp_path / "legacy.pt"
    torch.save(
        {"w": torch.ones(2), "np": np.arange(3)}, legacy, _use_new_zipfile_serialization=False
    )
    assert np.array_equal(safe_load(legacy)["np"], np.arange(3))


def test_pickle_joblib_npy(tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    X, y = np.random.default_rng(0).normal(size=(20, 2)), np.arange(20) % 2
    model = LogisticRegression().fit(X, y)
    (tmp_path / "m.pkl").write_bytes(pickle.dumps(model, protocol=2))
    assert (safe_load(tmp_path / "m.pkl").predict(X) == model.predict(X)).all()
    obj = {"model": model, "a": np.arange(5.0), "o": np.array(["x", None], dtype=object)}
    for kw in ({}, {"compress": 3}, {"compress": ("xz", 1)}):
        joblib.dump(obj, tmp_path / "m.joblib", **kw)
        loaded = safe_load(tmp_path / "m.joblib")
        assert list(loaded["o"]) == ["x", None] and np.array_equal(loaded["a"], obj["a"])
    np.save(tmp_path / "a.npy", np.eye(2))
    assert np.array_equal(safe_load(tmp_path / "a.npy"), np.eye(2))
    np.save(tmp_path / "o.npy", np.array(["a", 1], dtype=object), allow_pickle=True)
    assert list(safe_load(tmp_path / "o.npy")) == ["a", 1]
    frame = pd.DataFrame({"t": pd.to_datetime(["2024-01-01"]).tz_localize("Europe/Paris")})
    (tmp_path / "f.pkl").write_bytes(pickle.dumps(frame, protocol=2))
    assert safe_load(tmp_path / "f.pkl").equals(frame)


def test_refuses_unsafe_without_running_it(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    for name, write in (
        ("p.pkl", lambda p: p.write_bytes(pickle.dumps(Touch(marker)))),
        ("t.pt", lambda p: torch.save({"x": Touch(marker)}, p)),
        ("j.joblib", lambda p: joblib.dump([np.arange(3), Touch(marker)], p)),
    ):
        path = tmp_path / name
        write(path)
        with pytest.raises(ScanRefusedError) as info:
            safe_load(path)
        assert info.value.exit_code == 1 and "UNSAFE" in str(info.value)
    assert not marker.exists()


def test_refuses_unknown_and_unsupported(tmp_path: Path) -> None:
    (tmp_path / "t.pkl").write_bytes(pickle.dumps(list(range(100)))[:-3])
    with pytest.raises(ScanRefusedError) as info:
        safe_load(tmp_path / "t.pkl")
    assert info.value.exit_code == 2
    from safetensors.numpy import save_file

    save_file({"w": np.ones(2)}, str(tmp_path / "w.safetensors"))
    with pytest.raises(ScanRefusedError, match="does not load"):
        safe_load(tmp_path / "w.safetensors")


def test_restricted_unpickler_is_a_second_wall(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    for data in (
        pickle.dumps(Touch(marker)),
        b"\x80\x02c__builtin__\ngetattr\nczoneinfo\nZoneInfo\nX\x08\x00\x00\x00__init__\x86R.",
        b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00aX\x04\x00\x00\x00zlib\x86R.",
    ):
        with pytest.raises(pickle.UnpicklingError):
            RestrictedUnpickler(io.BytesIO(data), Allowlist()).load()
    assert not marker.exists()


def test_policy_additions(tmp_path: Path) -> None:
    path = tmp_path / "c.pkl"
    path.write_bytes(pickle.dumps(pd.ExcelWriter))
    with pytest.raises(ScanRefusedError):
        safe_load(path)
    assert safe_load(path, extra_allowed_globals=["pandas:ExcelWriter"]) is pd.ExcelWriter
