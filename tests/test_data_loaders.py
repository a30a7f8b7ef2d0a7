"""Loaders (CSV, Parquet, NumPy, torch Dataset) and schema validation on load."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader

import securenb.data as data
from securenb.data import streaming_aead as sa
from securenb.data.errors import AccessDenied, DataFormatError, DataValidationError
from securenb.data.manifest import ArraySpec, Column, Schema

P4K = sa.AES256_GCM_HKDF_4KB.name


@pytest.fixture
def kek(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("TEST_KEK", base64.b64encode(os.urandom(32)).decode())
    return "env:TEST_KEK"


def frame(rows: int = 2000) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({
        "age": rng.integers(18, 90, rows),
        "income": rng.normal(50_000, 10_000, rows).round(2),
        "group": rng.choice(["a", "b", "c"], rows),
        "label": rng.integers(0, 2, rows).astype(bool),
    })


def encrypt_csv(tmp_path: Path, kek: str, df: pd.DataFrame, **kwargs: Any) -> Path:
    src = tmp_path / "train.csv"
    df.to_csv(src, index=False)
    return Path(data.encrypt(src, kek=kek, algorithm=P4K, **kwargs).ciphertext)


def test_csv_round_trip_with_inferred_schema(tmp_path: Path, kek: str) -> None:
    df = frame()
    schema = data.infer_schema(df)
    assert [c.type for c in schema.columns] == ["int", "float", "string", "bool"]
    enc = encrypt_csv(tmp_path, kek, df, schema=schema)
    loaded = data.read_csv(enc)
    pd.testing.assert_frame_equal(loaded, df, check_dtype=False)


@pytest.mark.parametrize(("column", "rule", "message"), [
    (Column(name="age", type="int", max=60), "max", "column 'age': rule max=60 broken by"),
    (Column(name="age", type="int", min=30), "min", "column 'age': rule min=30 broken by"),
    (Column(name="group", type="string", allowed=("a", "b")), "allowed",
     "column 'group': rule allowed=['a', 'b'] broken by"),
    (Column(name="income", type="float", nullable=False), "nullable",
     "column 'income': rule nullable=false broken by 1 row(s) (first at row 5)"),
    (Column(name="group", type="int"), "type", "column 'group': rule type=int broken"),
])
def test_validation_errors_name_column_and_rule(
    tmp_path: Path, kek: str, column: Column, rule: str, message: str
) -> None:
    df = frame()
    df.loc[5, "income"] = None
    others = [c for c in data.infer_schema(df).columns if c.name != column.name]
    enc = encrypt_csv(tmp_path, kek, df, schema=Schema(columns=(column, *others)))
    with pytest.raises(DataValidationError) as info:
        data.read_csv(enc)
    assert message in str(info.value) and str(enc) in str(info.value)
    assert info.value.exit_code == 1
    data.read_csv(enc, validate=False)  # the caller may look at bad data on purpose


def test_missing_and_extra_columns(tmp_path: Path, kek: str) -> None:
    df = frame()
    enc = encrypt_csv(tmp_path, kek, df, schema=Schema(columns=(
        Column(name="age", type="int"), Column(name="zip", type="string"))))
    with pytest.raises(DataValidationError, match="column 'zip': missing"):
        data.read_csv(enc)
    enc = encrypt_csv(tmp_path, kek, df, schema=Schema(columns=(Column(name="age", type="int"),)))
    with pytest.raises(DataValidationError, match="column 'income': not in the schema"):
        data.read_csv(enc)
    lenient = Schema(columns=(Column(name="age", type="int"),), allow_extra_columns=True)
    enc = encrypt_csv(tmp_path, kek, df, schema=lenient)
    assert len(data.read_csv(enc)) == len(df)


def test_datetime_columns_are_parsed(tmp_path: Path, kek: str) -> None:
    df = pd.DataFrame({"when": pd.date_range("2024-01-01", periods=10, freq="D"), "x": range(10)})
    schema = Schema(columns=(Column(name="when", type="datetime", nullable=False),
                             Column(name="x", type="int", min=0, max=9)))
    loaded = data.read_csv(encrypt_csv(tmp_path, kek, df, schema=schema))
    assert pd.api.types.is_datetime64_any_dtype(loaded["when"])


def test_require_schema(tmp_path: Path, kek: str) -> None:
    enc = encrypt_csv(tmp_path, kek, frame())
    data.read_csv(enc)
    with pytest.raises(DataValidationError, match="has no schema"):
        data.read_csv(enc, require_schema=True)


def test_loader_checks_the_digest(tmp_path: Path, kek: str) -> None:
    from test_data_dataset import replace_under_same_key

    df = frame()
    enc = encrypt_csv(tmp_path, kek, df)
    other = frame().assign(age=lambda d: d["age"] + 1)
    src = tmp_path / "other.csv"
    other.to_csv(src, index=False)
    assert src.stat().st_size == (tmp_path / "train.csv").stat().st_size
    replace_under_same_key(enc, src.read_bytes())
    with pytest.raises(data.DecryptionError, match="digest"):
        data.read_csv(enc)


def test_parquet(tmp_path: Path, kek: str, monkeypatch: pytest.MonkeyPatch) -> None:
    df = frame(20_000)
    src = tmp_path / "train.parquet"
    df.to_parquet(src, row_group_size=5000)
    schema = data.infer_schema(df)
    enc = data.encrypt(src, kek=kek, algorithm=P4K, schema=schema).ciphertext
    pd.testing.assert_frame_equal(data.read_parquet(enc), df)
    decrypted: list[int] = []
    original = sa.SegmentCipher.decrypt_into

    def counting(self: sa.SegmentCipher, index: int, *args: Any) -> None:
        decrypted.append(index)
        original(self, index, *args)

    monkeypatch.setattr(sa.SegmentCipher, "decrypt_into", counting)
    subset = data.read_parquet(enc, columns=["age"])
    assert list(subset.columns) == ["age"]
    total = sa.AES256_GCM_HKDF_4KB.segment_count(data.manifest_of(enc).plaintext_size)
    assert len(set(decrypted)) < total  # only the footer and the column's pages


def test_parquet_validation(tmp_path: Path, kek: str) -> None:
    df = frame()
    src = tmp_path / "train.parquet"
    df.to_parquet(src)
    schema = Schema(columns=(Column(name="age", type="int", max=20),
                             *[c for c in data.infer_schema(df).columns if c.name != "age"]))
    enc = data.encrypt(src, kek=kek, schema=schema).ciphertext
    with pytest.raises(DataValidationError, match="column 'age': rule max=20"):
        data.read_parquet(enc)
    data.read_parquet(enc, columns=["income"])  # only the columns read are checked


def test_wrong_loader_for_the_media_type(tmp_path: Path, kek: str) -> None:
    enc = encrypt_csv(tmp_path, kek, frame())
    with pytest.raises(DataFormatError, match="holds text/csv"):
        data.read_parquet(enc)
    with pytest.raises(DataFormatError, match="holds text/csv"):
        data.load_numpy(enc)


def encrypt_npy(tmp_path: Path, kek: str, array: np.ndarray[Any, Any], **kwargs: Any) -> Path:
    src = tmp_path / "x.npy"
    np.save(src, array, allow_pickle=False)
    return Path(data.encrypt(src, kek=kek, algorithm=P4K, **kwargs).ciphertext)


def test_numpy(tmp_path: Path, kek: str) -> None:
    array = np.random.default_rng(1).normal(size=(500, 8)).astype(np.float32)
    schema = data.infer_schema(array)
    assert schema.array is not None and schema.array.shape == (None, 8)
    loaded = data.load_numpy(encrypt_npy(tmp_path, kek, array, schema=schema))
    assert isinstance(loaded, np.ndarray)
    np.testing.assert_array_equal(loaded, array)


def test_numpy_validation(tmp_path: Path, kek: str) -> None:
    array = np.arange(100, dtype=np.float64).reshape(50, 2)
    array[3, 1] = np.nan
    for spec, message in [
        (ArraySpec(dtype="float32"), "rule dtype=float32 broken"),
        (ArraySpec(dtype="float64", shape=(None, 3)), "rule shape=[None, 3] broken"),
        (ArraySpec(dtype="float64", allow_nan=False), "rule allow_nan=false broken by 1"),
        (ArraySpec(dtype="float64", max=10), "rule max=10 broken by 89"),
    ]:
        enc = encrypt_npy(tmp_path, kek, array, schema=Schema(array=spec))
        with pytest.raises(DataValidationError, match=message.replace("[", r"\[")):
            data.load_numpy(enc)


def test_npz(tmp_path: Path, kek: str) -> None:
    src = tmp_path / "pair.npz"
    np.savez(src, x=np.arange(10), y=np.ones(3))
    loaded = data.load_numpy(data.encrypt(src, kek=kek).ciphertext)
    assert isinstance(loaded, dict) and sorted(loaded) == ["x", "y"]
    np.testing.assert_array_equal(loaded["x"], np.arange(10))


def test_numpy_never_unpickles(tmp_path: Path, kek: str) -> None:
    src = tmp_path / "objects.npy"
    np.save(src, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    enc = data.encrypt(src, kek=kek).ciphertext
    with pytest.raises(DataFormatError, match="not a NumPy file without pickles"):
        data.load_numpy(enc)
    with pytest.raises(DataFormatError, match="pickles"):
        data.EncryptedArrayDataset(enc)


def test_torch_dataset(tmp_path: Path, kek: str) -> None:
    array = np.random.default_rng(2).normal(size=(3000, 4, 3)).astype(np.float32)
    enc = encrypt_npy(tmp_path, kek, array, schema=data.infer_schema(array))
    dataset = data.EncryptedArrayDataset(enc)
    assert len(dataset) == 3000
    for index in (0, 1, 1234, 2999, -1):
        assert torch.equal(dataset[index], torch.from_numpy(array[index]))
    with pytest.raises(IndexError):
        dataset[3000]
    batches = list(DataLoader(dataset, batch_size=500, shuffle=True))
    assert sum(len(b) for b in batches) == 3000
    assert torch.isclose(torch.cat(batches).sum(), torch.from_numpy(array).sum(), rtol=1e-4)
    dataset.close()


def test_torch_dataset_with_workers(tmp_path: Path, kek: str) -> None:
    array = np.arange(4000, dtype=np.int64).reshape(1000, 4)
    dataset = data.EncryptedArrayDataset(encrypt_npy(tmp_path, kek, array))
    loader = DataLoader(dataset, batch_size=100, num_workers=2)
    assert torch.equal(torch.cat(list(loader)), torch.from_numpy(array))


def test_torch_dataset_checks_rows(tmp_path: Path, kek: str) -> None:
    array = np.arange(40, dtype=np.float32).reshape(10, 4)
    enc = encrypt_npy(tmp_path, kek, array,
                      schema=Schema(array=ArraySpec(dtype="float32", shape=(None, 4), max=30)))
    dataset = data.EncryptedArrayDataset(enc)
    assert dataset[0].tolist() == [0, 1, 2, 3]
    with pytest.raises(DataValidationError, match=r"\[9\]: array: rule max=30"):
        dataset[9]
    bad_shape = encrypt_npy(tmp_path, kek, array,
                            schema=Schema(array=ArraySpec(dtype="float32", shape=(None, 5))))
    with pytest.raises(DataValidationError, match="rule shape"):
        data.EncryptedArrayDataset(bad_shape)


def test_loaders_check_roles(tmp_path: Path, kek: str) -> None:
    enc = encrypt_csv(tmp_path, kek, frame(), roles=["analyst"])
    with pytest.raises(AccessDenied):
        data.read_csv(enc, role="intern")
    assert len(data.read_csv(enc, role="analyst")) == 2000
    array_enc = encrypt_npy(tmp_path, kek, np.zeros((4, 2)), roles=["trainer"])
    with pytest.raises(AccessDenied):
        data.load_numpy(array_enc, role="analyst")
    with pytest.raises(AccessDenied):
        data.EncryptedArrayDataset(array_enc, role="analyst")
