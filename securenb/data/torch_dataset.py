"""A torch ``Dataset`` over an encrypted .npy file: row i decrypts only its segment.

Training reads rows in any order without a plaintext copy on disk or the whole
array in memory. The data key is unwrapped once (role checked) in the process
that builds the dataset; DataLoader workers inherit it and open their own file
handle. Dtype and shape are checked against the manifest at once, value rules
(range, NaN) on every row read.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from securenb.data.data_key import DataKey
from securenb.data.dataset import data_key_for, manifest_of, open_encrypted
from securenb.data.errors import DataFormatError
from securenb.data.kek import KeyEncryptionKey
from securenb.data.manifest import ArraySpec
from securenb.data.random_access import EncryptedReader
from securenb.data.validation import check_layout, check_values
from securenb.errors import at


class EncryptedArrayDataset(Dataset[torch.Tensor]):
    """Rows (first axis) of an encrypted .npy array as tensors."""

    def __init__(
        self,
        path: Path | str,
        *,
        kek: KeyEncryptionKey | str | None = None,
        data_key: DataKey | None = None,
        role: str | None = None,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        self.path = Path(path)
        self._key = data_key or data_key_for(self.path, kek, role=role)
        self._transform = transform
        manifest = manifest_of(self.path)
        self._spec: ArraySpec | None = manifest.schema_.array if manifest.schema_ else None
        with open_encrypted(self.path, data_key=self._key, role=role, verify_digest=True) as f:
            self._dtype, shape, self._offset = _npy_header(f, str(self.path))
        if not shape:
            raise DataFormatError(at(self.path, "holds a 0-d array: no rows to index"))
        if self._spec is not None:
            check_layout(self._dtype, shape, self._spec, str(self.path))
        self._length = shape[0]
        self._row_shape = shape[1:]
        self._row_bytes = self._dtype.itemsize * math.prod(self._row_shape)
        self._reader: EncryptedReader | None = None
        self._pid = -1

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index: int) -> torch.Tensor:
        if index < 0:
            index += self._length
        if not 0 <= index < self._length:
            raise IndexError(f"{self.path}: row {index} of {self._length}")
        reader = self._open()
        reader.seek(self._offset + index * self._row_bytes)
        row = bytearray(self._row_bytes)
        if reader.readinto(row) != self._row_bytes:
            raise DataFormatError(at(self.path, f"row {index} is cut short"))
        array = np.frombuffer(row, self._dtype).reshape(self._row_shape)
        if self._spec is not None:
            check_values(array, self._spec, f"{self.path}[{index}]")
        tensor = torch.from_numpy(array)
        return self._transform(tensor) if self._transform else tensor

    def _open(self) -> EncryptedReader:
        """One reader per process: forked DataLoader workers must not share a file offset."""
        if self._reader is None or self._pid != os.getpid():
            self._reader = open_encrypted(self.path, data_key=self._key)
            self._pid = os.getpid()
        return self._reader

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_reader"], state["_pid"] = None, -1
        return state

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None


def _npy_header(reader: EncryptedReader, name: str) -> tuple[np.dtype[Any], tuple[int, ...], int]:
    """dtype, shape and data offset of an .npy stream; refuses pickles and Fortran order."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(reader)
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(reader)
        else:
            shape, fortran, dtype = fmt.read_array_header_2_0(reader)
    except ValueError as exc:
        raise DataFormatError(at(name, f"not a .npy file ({exc})")) from None
    if dtype.hasobject:
        raise DataFormatError(at(name, "holds Python objects (pickles): refused"))
    if fortran and len(shape) > 1:
        raise DataFormatError(at(name, "is in Fortran order; save it C-contiguous for row access"))
    return dtype, tuple(shape), reader.tell()
