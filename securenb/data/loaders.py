"""Load encrypted CSV, Parquet and NumPy files straight into memory, validated.

Plaintext never touches the disk: the parsers read from ``open_encrypted``.
NumPy files load with ``allow_pickle=False`` (a pickle in a dataset is code).
Every loader checks the ciphertext digest and, when the manifest has a schema,
the data against it; ``require_schema`` refuses a dataset that has none.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from securenb.data.data_key import DataKey
from securenb.data.dataset import manifest_of, open_encrypted
from securenb.data.errors import DataFormatError, DataValidationError
from securenb.data.kek import KeyEncryptionKey
from securenb.data.manifest import Manifest, Schema
from securenb.data.random_access import EncryptedReader
from securenb.data.validation import check
from securenb.errors import at

_CSV = ("text/csv", "text/tab-separated-values")
_PARQUET = ("application/vnd.apache.parquet",)
_NUMPY = ("application/x-npy", "application/x-npz")
_ANY = "application/octet-stream"


def _expect(manifest: Manifest, kinds: tuple[str, ...], path: Path, loader: str) -> None:
    if manifest.media_type not in (*kinds, _ANY):
        raise DataFormatError(
            at(path, f"holds {manifest.media_type} ({manifest.name}); {loader} reads {kinds[0]}")
        )


def _finish(
    data: Any, reader: EncryptedReader, manifest: Manifest, path: Path,
    validate: bool, require_schema: bool, schema: Schema | None = None,
) -> Any:
    if not reader.digest_checked:
        reader.verify_digest()
    if require_schema and manifest.schema_ is None:
        raise DataValidationError(at(path, "has no schema in its manifest, and one is required"))
    schema = schema or manifest.schema_
    if validate and schema is not None:
        check(data, schema, str(path))
    return data


def read_csv(
    path: Path | str,
    *,
    kek: KeyEncryptionKey | str | None = None,
    data_key: DataKey | None = None,
    role: str | None = None,
    validate: bool = True,
    require_schema: bool = False,
    **read_csv_kwargs: Any,
) -> Any:
    """``pandas.read_csv`` of an encrypted CSV; datetime columns of the schema are parsed."""
    import pandas as pd  # type: ignore[import-untyped, unused-ignore]

    path = Path(path)
    manifest = manifest_of(path)
    _expect(manifest, _CSV, path, "read_csv")
    if manifest.schema_ is not None and "parse_dates" not in read_csv_kwargs:
        dates = [c.name for c in manifest.schema_.columns if c.type == "datetime"]
        if dates:
            read_csv_kwargs["parse_dates"] = dates
    if manifest.media_type == "text/tab-separated-values":
        read_csv_kwargs.setdefault("sep", "\t")
    with open_encrypted(path, kek=kek, data_key=data_key, role=role) as reader:
        frame = pd.read_csv(reader, **read_csv_kwargs)
        return _finish(frame, reader, manifest, path, validate, require_schema)


def read_parquet(
    path: Path | str,
    *,
    columns: list[str] | None = None,
    kek: KeyEncryptionKey | str | None = None,
    data_key: DataKey | None = None,
    role: str | None = None,
    validate: bool = True,
    require_schema: bool = False,
) -> Any:
    """A pandas DataFrame from an encrypted Parquet file; only the needed segments decrypt."""
    import pyarrow.parquet as pq  # type: ignore[import-untyped, unused-ignore]

    path = Path(path)
    manifest = manifest_of(path)
    _expect(manifest, _PARQUET, path, "read_parquet")
    with open_encrypted(path, kek=kek, data_key=data_key, role=role, verify_digest=True) as reader:
        frame = pq.read_table(reader, columns=columns).to_pandas()
        schema = manifest.schema_
        if columns is not None and schema is not None:  # check the columns read, no others
            kept = tuple(c for c in schema.columns if c.name in columns)
            schema = schema.model_copy(update={"columns": kept})
        return _finish(frame, reader, manifest, path, validate, require_schema, schema)


def load_numpy(
    path: Path | str,
    *,
    kek: KeyEncryptionKey | str | None = None,
    data_key: DataKey | None = None,
    role: str | None = None,
    validate: bool = True,
    require_schema: bool = False,
) -> np.ndarray[Any, Any] | dict[str, np.ndarray[Any, Any]]:
    """An array from an encrypted .npy (or a dict of arrays from an .npz), never unpickling."""
    path = Path(path)
    manifest = manifest_of(path)
    _expect(manifest, _NUMPY, path, "load_numpy")
    with open_encrypted(path, kek=kek, data_key=data_key, role=role) as reader:
        try:
            loaded = np.load(reader, allow_pickle=False)
            data = dict(loaded.items()) if isinstance(loaded, np.lib.npyio.NpzFile) else loaded
        except ValueError as exc:
            raise DataFormatError(at(path, f"not a NumPy file without pickles ({exc})")) from None
        result: np.ndarray[Any, Any] | dict[str, np.ndarray[Any, Any]]
        result = _finish(data, reader, manifest, path, validate, require_schema)
        return result
