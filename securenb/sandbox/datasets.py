"""Encrypted datasets inside the sandbox, decrypted in memory only.

``%%secure_train --inputs data=train.csv.enc`` never hands the sandbox the
dataset's own data key: the parent decrypts the dataset as a stream and
re-encrypts it, under a fresh key for this sandbox only, into the sandbox's
inbox. The run's setup message (not the environment, so no ``/proc/*/environ``
holds it) tells this module where that copy is and the key that opens it and
nothing else; the helpers below decrypt from the copy, so the plaintext lives
only in this sandbox's memory.

    import securenb.sandbox as sb
    df = sb.read_csv("data")                 # validated against the manifest's schema
    with sb.dataset("data") as f: ...        # seekable plaintext file object
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from securenb.data.data_key import DataKey
    from securenb.data.random_access import EncryptedReader

_keys: dict[str, DataKey] = {}  # dataset name -> the one-time key of its copy
_declared: dict[str, dict[str, Any]] = {}  # dataset name -> what the parent declared


def configure(declared: dict[str, dict[str, Any]]) -> None:
    """Take this run's datasets: their copies and one-time keys (called by the prelude)."""
    from securenb.data.data_key import DataKey

    _declared.clear()
    for name, item in declared.items():
        item = dict(item)
        _keys[name] = DataKey.from_secret(item.pop("key"), f"dataset {name!r}")
        _declared[name] = item


def _lookup(name: str) -> tuple[Path, DataKey, bool]:
    """(ciphertext, key, schema required) of a dataset of ``--inputs``, by its name there.

    The manifest is checked against the digest the parent unwrapped the key
    for, so a sidecar edited in place after the run started is not believed."""
    from securenb.data.dataset import manifest_of

    item = _declared.get(name)
    if item is None:
        known = ", ".join(sorted(_declared)) or "none"
        raise LookupError(f"no dataset {name!r} in this run's --inputs (declared: {known})")
    key = _keys.get(name)
    if key is None:
        raise RuntimeError(f"dataset {name!r}: this sandbox was not given its data key")
    path = Path(item["path"])
    if manifest_of(path).digest() != item["manifest_sha256"]:
        raise RuntimeError(f"dataset {name!r}: {path}: its manifest changed after the run began")
    return path, key, bool(item["require_schema"])


def dataset(name: str) -> EncryptedReader:
    """A seekable, read-only plaintext view of the dataset (decrypts only what is read).

    Not schema-checked: refused when policy requires validated datasets."""
    from securenb.data.dataset import open_encrypted

    path, key, required = _lookup(name)
    if required:
        raise PermissionError(
            f"dataset {name!r}: policy require_validated = true: read it with read_csv, "
            "read_parquet or load_numpy, which check it against its schema"
        )
    return open_encrypted(path, data_key=key)


def read_csv(name: str, **read_csv_kwargs: Any) -> Any:
    """``pandas.read_csv`` of the dataset, checked against its manifest's schema."""
    from securenb.data.loaders import read_csv as load

    path, key, required = _lookup(name)
    return load(path, data_key=key, require_schema=required, **read_csv_kwargs)


def read_parquet(name: str, columns: list[str] | None = None) -> Any:
    """A pandas DataFrame of the dataset (only ``columns``, if given), schema-checked."""
    from securenb.data.loaders import read_parquet as load

    path, key, required = _lookup(name)
    return load(path, columns=columns, data_key=key, require_schema=required)


def load_numpy(name: str) -> np.ndarray[Any, Any] | dict[str, np.ndarray[Any, Any]]:
    """The dataset's array (a dict of arrays for .npz), without pickle, schema-checked."""
    from securenb.data.loaders import load_numpy as load

    path, key, required = _lookup(name)
    return load(path, data_key=key, require_schema=required)
