"""The dataset manifest: what an encrypted file holds, checked on every load.

It sits beside the ciphertext as ``<file>.manifest.json`` together with the
wrapped data key. The manifest part (schema, ciphertext digest, source,
roles) is what gets signed, and the data key is wrapped with the digest of
its canonical JSON as associated data, so that editing the manifest (say,
adding a role) without the KEK makes the key unusable. Rotating the KEK
rewrites only the key part: the ciphertext and its digest stay as they are.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from securenb.core.canonical import canonical_json, sha256_hex
from securenb.core.fsutil import atomic_write_bytes
from securenb.data.errors import DataFormatError
from securenb.data.streaming_aead import ALGORITHMS
from securenb.errors import at

FORMAT: Literal["securenb.dataset/v1"] = "securenb.dataset/v1"
SIDECAR_SUFFIX = ".manifest.json"

ColumnType = Literal["int", "float", "bool", "string", "datetime"]
Scalar = bool | int | float | str


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Column(_Model):
    """One column's rules; ``min``/``max`` are inclusive, ``allowed`` a closed set."""

    name: str
    type: ColumnType
    nullable: bool = True
    min: int | float | None = None
    max: int | float | None = None
    allowed: tuple[Scalar, ...] | None = None


class ArraySpec(_Model):
    """Rules for a NumPy array: exact dtype, shape (None = any length), range, NaN."""

    dtype: str
    shape: tuple[int | None, ...] | None = None
    min: int | float | None = None
    max: int | float | None = None
    allow_nan: bool = True


class Schema(_Model):
    columns: tuple[Column, ...] = ()
    allow_extra_columns: bool = False
    array: ArraySpec | None = None


class Encryption(_Model):
    scheme: Literal["tink-streaming-aead"] = "tink-streaming-aead"
    algorithm: str
    associated_data: str

    @field_validator("algorithm")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in ALGORITHMS:
            raise ValueError(f"unknown algorithm {value!r}; known: {', '.join(ALGORITHMS)}")
        return value


class Ciphertext(_Model):
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)


class Manifest(_Model):
    """Signed part: identity, encryption parameters, digest, schema, source, roles."""

    dataset_id: str
    name: str
    media_type: str
    created: str
    source: str | None = None
    encryption: Encryption
    ciphertext: Ciphertext
    plaintext_size: int = Field(ge=0)
    schema_: Schema | None = Field(default=None, alias="schema")
    roles: tuple[str, ...] = ()

    def canonical(self) -> bytes:
        """RFC 8785 JSON of the manifest: what is signed and what the key is bound to."""
        return canonical_json(self.model_dump(mode="json", by_alias=True, exclude_none=True))

    def digest(self) -> str:
        return sha256_hex(self.canonical())


class KeyEnvelope(_Model):
    """The data key wrapped by a KEK; names the KEK by URI and id, never holds it."""

    kek_uri: str
    kek_id: str
    algorithm: str
    wrapped_key: str


class DatasetFile(_Model):
    """The whole sidecar file."""

    format: Literal["securenb.dataset/v1"] = FORMAT
    manifest: Manifest
    key: KeyEnvelope


def sidecar_path(ciphertext: Path) -> Path:
    ciphertext = Path(ciphertext)
    return ciphertext.with_name(ciphertext.name + SIDECAR_SUFFIX)


def read_sidecar(ciphertext: Path) -> DatasetFile:
    """Load and validate the sidecar of ``ciphertext``; errors name the file and field."""
    path = sidecar_path(ciphertext)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataFormatError(
            at(ciphertext, f"no manifest beside it ({path.name}): not a securenb dataset "
                           "(`securenb data inspect` tells what it is)")
        ) from None
    except OSError as exc:
        raise DataFormatError(at(path, f"cannot read manifest ({exc.strerror})")) from None
    return parse_sidecar(raw, path)


def parse_sidecar(raw: bytes, path: Path) -> DatasetFile:
    """A sidecar's bytes (read from ``path``) validated; errors name the file and field."""
    try:
        return DatasetFile.model_validate(json.loads(raw))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataFormatError(at(path, f"manifest is not JSON ({exc})")) from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(top level)"
        raise DataFormatError(at(path, f"invalid manifest at {where}: {first['msg']}")) from None


def write_sidecar(ciphertext: Path, record: DatasetFile) -> Path:
    path = sidecar_path(ciphertext)
    text = json.dumps(record.model_dump(mode="json", by_alias=True, exclude_none=True), indent=2)
    atomic_write_bytes(path, text.encode() + b"\n")
    return path
