"""Encrypted datasets inside the sandbox, decrypted in memory only.

``%%secure_train --inputs data=train.csv.enc`` mounts the ciphertext and its
manifest read-only and hands the sandbox the dataset's data key as a secret
environment variable; the KEK never leaves the host. The first run moves the
keys out of the environment (so processes the cell starts do not inherit
them) into this module; the helpers below decrypt from the mounted file, so
the plaintext lives only in this sandbox's memory.

    import securenb.sandbox as sb
    df = sb.read_csv("data")                 # validated against the manifest's schema
    with sb.dataset("data") as f: ...        # seekable plaintext file object
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from securenb.data.data_key import DataKey
    from securenb.data.random_access import EncryptedReader

KEY_ENV_PREFIX = "SECURENB_DATA_KEY_"

_keys: dict[str, DataKey] = {}  # environment variable name -> key, for this kernel's life
_declared: dict[str, dict[str, Any]] = {}  # dataset name -> what the parent declared


def key_env(index: int) -> str:
    """The environment variable that carries the data key of the ``index``-th dataset."""
    return f"{KEY_ENV_PREFIX}{index}"


def configure(declared: dict[str, dict[str, Any]]) -> None:
    """Take the keys of this run's datasets out of the environment (called by the prelude)."""
    from securenb.data.data_key import DataKey

    for item in declared.values():
        if item["key_env"] in os.environ:
            _keys[item["key_env"]] = DataKey.from_env(item["key_env"])
    _declared.clear()
    _declared.update(declared)


def _lookup(name: str) -> tuple[Path, DataKey, bool]:
    """(ciphertext, key, schema required) of a dataset of ``--inputs``, by its name there.

    The manifest is checked against the digest the parent unwrapped the key
    for, so a sidecar edited in place after the run started is not believed."""
    from securenb.data.dataset import manifest_of

    item = _declared.get(name)
    if item is None:
        known = ", ".join(sorted(_declared)) or "none"
        raise LookupError(f"no dataset {name!r} in this run's --inputs (declared: {known})")
    key = _keys.get(item["key_env"])
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
