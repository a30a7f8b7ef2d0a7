"""Encrypted datasets: encrypt, decrypt, open, rotate, inspect.

A dataset is two files: the ciphertext (Tink streaming AEAD, readable by the
`tink` package given the data key and the recorded associated data) and its
manifest (``<file>.manifest.json``: schema, digest, source, roles, wrapped key).
These functions never print and never record: they return dataclasses, and
the front-ends record them in the workspace.

To decrypt inside a sandbox, the host calls ``data_key_for`` (which needs the
KEK and checks the role) and passes ``DataKey.to_secret()`` in as a secret; the
sandbox calls ``decrypt``/``open_encrypted`` with ``data_key=DataKey.from_env()``
and never sees the KEK.
"""

from __future__ import annotations

import io
import mimetypes
import os
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from securenb.core.fsutil import atomic_writer
from securenb.core.store import file_sha256, now_rfc3339
from securenb.data.data_key import DataKey
from securenb.data.envelope import rewrap, unwrap_data_key, wrap_data_key
from securenb.data.errors import AccessDenied, DataFormatError, DecryptionError
from securenb.data.kek import KeyEncryptionKey, as_kek
from securenb.data.manifest import (
    Ciphertext,
    DatasetFile,
    Encryption,
    Manifest,
    Schema,
    read_sidecar,
    sidecar_path,
    write_sidecar,
)
from securenb.data.random_access import EncryptedReader
from securenb.data.streaming_aead import (
    AES256_GCM_HKDF_1MB,
    ALGORITHMS,
    Progress,
    ReadableInto,
    decrypt_stream,
    encrypt_stream,
    params_for,
)
from securenb.data.unnamed import unnamed_writer
from securenb.data.writeback import WriteBehind
from securenb.errors import SecurenbError, at

DEFAULT_ALGORITHM = AES256_GCM_HKDF_1MB.name

MEDIA_TYPES = {
    ".csv": "text/csv",
    ".tsv": "text/tab-separated-values",
    ".parquet": "application/vnd.apache.parquet",
    ".pq": "application/vnd.apache.parquet",
    ".npy": "application/x-npy",
    ".npz": "application/x-npz",
}


def media_type_of(name: str) -> str:
    """Media type from the plaintext's name; loaders use it to refuse a wrong reader."""
    suffix = Path(name).suffix.lower()
    return MEDIA_TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"


def associated_data_for(dataset_id: str) -> str:
    return f"securenb/dataset/v1/{dataset_id}"


@dataclass(frozen=True)
class EncryptResult:
    ciphertext: str
    manifest: str
    dataset_id: str
    name: str
    media_type: str
    algorithm: str
    plaintext_size: int
    ciphertext_size: int
    ciphertext_sha256: str
    kek_uri: str
    kek_id: str
    roles: tuple[str, ...]
    schema: bool

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DecryptResult:
    ciphertext: str
    output: str
    dataset_id: str
    plaintext_size: int
    ciphertext_sha256: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RotateResult:
    ciphertext: str
    dataset_id: str
    old_kek_id: str
    new_kek_id: str
    new_kek_uri: str
    ciphertext_sha256: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def check_access(manifest: Manifest, role: str | None, path: Path | str) -> None:
    """Refuse locally unless the manifest allows ``role`` (deny unless allowed).

    An empty role list means no restriction; a restricted dataset needs a role
    that it names, so leaving the role out does not open it. This is the SDK's
    check; the server extension enforces roles (whoever holds the KEK can decrypt).
    """
    if manifest.roles and role is None:
        raise AccessDenied(
            at(path, f"this dataset may be decrypted only by roles {', '.join(manifest.roles)}: "
                     "give your role (--role or SECURENB_ROLE)")
        )
    if role is not None and manifest.roles and role not in manifest.roles:
        raise AccessDenied(
            at(path, f"role {role!r} may not decrypt this dataset "
                     f"(allowed: {', '.join(manifest.roles)})")
        )


def encrypt_from(
    source: ReadableInto,
    dst: Path,
    *,
    name: str,
    kek: KeyEncryptionKey | str,
    roles: tuple[str, ...] | list[str] = (),
    schema: Schema | None = None,
    origin: str | None = None,
    media_type: str | None = None,
    algorithm: str = DEFAULT_ALGORITHM,
    progress: Progress | None = None,
) -> EncryptResult:
    """Encrypt a readable stream into a new dataset at ``dst`` (used by encrypt and migrate).

    The key is wrapped and the manifest written before the ciphertext is
    renamed into place, so a KMS failure leaves no unusable ciphertext behind.
    """
    dst = Path(dst)
    params = params_for(algorithm)
    wrapping = as_kek(kek)
    dataset_id = uuid.uuid4().hex
    associated = associated_data_for(dataset_id)
    data_key = DataKey.generate(params.key_size)
    with atomic_writer(dst) as out:
        stream = encrypt_stream(
            source, WriteBehind(out), data_key.material, associated.encode(), params, progress
        )
        manifest = Manifest(
            dataset_id=dataset_id,
            name=name,
            media_type=media_type or media_type_of(name),
            created=now_rfc3339(),
            source=origin,
            encryption=Encryption(algorithm=params.name, associated_data=associated),
            ciphertext=Ciphertext(sha256=stream.ciphertext_sha256, size=stream.ciphertext_size),
            plaintext_size=stream.plaintext_size,
            schema=schema,
            roles=tuple(roles),
        )
        envelope = wrap_data_key(data_key, wrapping, manifest)
        sidecar = write_sidecar(dst, DatasetFile(manifest=manifest, key=envelope))
    return EncryptResult(
        ciphertext=str(dst),
        manifest=str(sidecar),
        dataset_id=dataset_id,
        name=name,
        media_type=manifest.media_type,
        algorithm=params.name,
        plaintext_size=stream.plaintext_size,
        ciphertext_size=stream.ciphertext_size,
        ciphertext_sha256=stream.ciphertext_sha256,
        kek_uri=envelope.kek_uri,
        kek_id=envelope.kek_id,
        roles=manifest.roles,
        schema=schema is not None,
    )


def _open_input(path: Path) -> io.BufferedReader:
    try:
        return open(path, "rb")
    except OSError as exc:
        raise DataFormatError(at(path, f"cannot read ({exc.strerror})")) from None


def default_output(src: Path) -> Path:
    return src.with_name(src.name + ".enc")


def encrypt(
    src: Path | str,
    dst: Path | str | None = None,
    *,
    kek: KeyEncryptionKey | str,
    roles: tuple[str, ...] | list[str] = (),
    schema: Schema | None = None,
    source: str | None = None,
    media_type: str | None = None,
    algorithm: str = DEFAULT_ALGORITHM,
    progress: Progress | None = None,
) -> EncryptResult:
    """Encrypt ``src`` to ``dst`` (default ``<src>.enc``) under a fresh data key."""
    src = Path(src)
    out = Path(dst) if dst is not None else default_output(src)
    if out.exists() and out.resolve() == src.resolve():
        raise DataFormatError(at(src, "refusing to encrypt a file onto itself"))
    with _open_input(src) as reader:
        return encrypt_from(
            reader, out, name=src.name, kek=kek, roles=roles, schema=schema,
            origin=source, media_type=media_type, algorithm=algorithm, progress=progress,
        )


def data_key_for(
    path: Path | str,
    kek: KeyEncryptionKey | str | None = None,
    *,
    role: str | None = None,
    record: DatasetFile | None = None,
) -> DataKey:
    """Unwrap a dataset's data key (role checked first); ``kek`` defaults to the recorded URI."""
    record = record or read_sidecar(Path(path))
    check_access(record.manifest, role, path)
    wrapping = as_kek(kek if kek is not None else record.key.kek_uri)
    return unwrap_data_key(record.key, wrapping, record.manifest, str(path))


def _key(
    path: Path, record: DatasetFile, kek: KeyEncryptionKey | str | None,
    data_key: DataKey | None, role: str | None,
) -> DataKey:
    if data_key is None:
        return data_key_for(path, kek, role=role, record=record)
    if role is not None:  # a key handed over directly was role-checked where it was unwrapped
        check_access(record.manifest, role, path)
    return data_key


def _check_size(path: Path, manifest: Manifest) -> None:
    try:
        size = os.stat(path).st_size
    except OSError as exc:
        raise DataFormatError(at(path, f"cannot read ({exc.strerror})")) from None
    if size != manifest.ciphertext.size:
        problem = "empty" if size == 0 else f"{size} bytes"
        raise DecryptionError(
            at(path, f"is {problem} but its manifest says {manifest.ciphertext.size} bytes: "
                     "truncated, extended or replaced")
        )


def decrypt(
    src: Path | str,
    dst: Path | str,
    *,
    kek: KeyEncryptionKey | str | None = None,
    data_key: DataKey | None = None,
    role: str | None = None,
    progress: Progress | None = None,
) -> DecryptResult:
    """Decrypt a dataset to ``dst`` (mode 0600), all or nothing.

    Plaintext goes to an unnamed file (securenb.data.unnamed) that becomes
    ``dst`` only after every segment authenticated and the ciphertext digest
    matched the manifest; on any failure, even SIGKILL, nothing is left.
    """
    src, dst = Path(src), Path(dst)
    record = read_sidecar(src)
    manifest = record.manifest
    key = _key(src, record, kek, data_key, role)
    params = params_for(manifest.encryption.algorithm, str(sidecar_path(src)))
    _check_size(src, manifest)
    with _open_input(src) as reader, unnamed_writer(dst, mode=0o600) as out:
        result = decrypt_stream(
            reader, WriteBehind(out), key.material,
            manifest.encryption.associated_data.encode(), params, name=str(src), progress=progress,
        )
        if result.ciphertext_sha256 != manifest.ciphertext.sha256:
            raise DecryptionError(
                at(src, "authenticates, but its digest is not the manifest's: the file was "
                        "replaced by another one encrypted under the same key")
            )
    return DecryptResult(
        ciphertext=str(src),
        output=str(dst),
        dataset_id=manifest.dataset_id,
        plaintext_size=result.plaintext_size,
        ciphertext_sha256=result.ciphertext_sha256,
    )


def open_encrypted(
    path: Path | str,
    *,
    kek: KeyEncryptionKey | str | None = None,
    data_key: DataKey | None = None,
    role: str | None = None,
    verify_digest: bool = False,
) -> EncryptedReader:
    """A seekable, read-only plaintext view that decrypts only the segments read.

    The size is checked against the manifest at once, every segment is
    authenticated, and the digest is checked when the file is read in order
    to its end; ``verify_digest=True`` checks it up front (one pass over the
    ciphertext) for random access.
    """
    path = Path(path)
    record = read_sidecar(path)
    manifest = record.manifest
    key = _key(path, record, kek, data_key, role)
    params = params_for(manifest.encryption.algorithm, str(sidecar_path(path)))
    _check_size(path, manifest)
    reader = EncryptedReader(
        path, key.material, manifest.encryption.associated_data.encode(), params,
        expected_size=manifest.ciphertext.size, expected_sha256=manifest.ciphertext.sha256,
    )
    if verify_digest:
        try:
            reader.verify_digest()
        except BaseException:
            reader.close()
            raise
    return reader


def manifest_of(path: Path | str) -> Manifest:
    """The dataset's manifest (no key needed)."""
    return read_sidecar(Path(path)).manifest


def rotate(
    path: Path | str,
    new_kek: KeyEncryptionKey | str,
    *,
    old_kek: KeyEncryptionKey | str | None = None,
) -> RotateResult:
    """Re-wrap the data key under ``new_kek``; the ciphertext is not touched."""
    path = Path(path)
    record = read_sidecar(path)
    old = as_kek(old_kek if old_kek is not None else record.key.kek_uri)
    new = as_kek(new_kek)
    envelope = rewrap(record.key, old, new, record.manifest, str(path))
    write_sidecar(path, record.model_copy(update={"key": envelope}))
    return RotateResult(
        ciphertext=str(path),
        dataset_id=record.manifest.dataset_id,
        old_kek_id=record.key.kek_id,
        new_kek_id=envelope.kek_id,
        new_kek_uri=envelope.kek_uri,
        ciphertext_sha256=record.manifest.ciphertext.sha256,
    )


@dataclass(frozen=True)
class Inspection:
    """What a file is, from its first bytes and its manifest; no key needed."""

    path: str
    kind: str
    size: int
    header: dict[str, Any] | None
    manifest: dict[str, Any] | None
    key: dict[str, str] | None
    digest_ok: bool | None
    problems: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


FERNET_PREFIX = b"gAAAAA"


def _sniff(head: bytes, size: int) -> tuple[str, dict[str, Any] | None]:
    if size == 0:
        return "empty", None
    if head.startswith(FERNET_PREFIX):
        return "fernet-legacy", None
    for params in ALGORITHMS.values():
        if head[:1] == bytes([params.header_size]) and size >= params.header_size + 16:
            key_bits = params.key_size * 8
            return "tink-streaming-aead", {"header_size": params.header_size, "key_bits": key_bits}
    return "unknown", None


def inspect(path: Path | str, *, verify_digest: bool = False) -> Inspection:
    """Say what a file is: a securenb dataset, a bare Tink stream, a Fernet file, or not ours."""
    path = Path(path)
    try:
        size = os.stat(path).st_size
        with open(path, "rb") as fh:
            head = fh.read(64)
    except OSError as exc:
        raise DataFormatError(at(path, f"cannot read ({exc.strerror})")) from None
    kind, header = _sniff(head, size)
    problems: list[str] = []
    manifest: dict[str, Any] | None = None
    key: dict[str, str] | None = None
    digest_ok: bool | None = None
    if sidecar_path(path).exists():
        try:
            record = read_sidecar(path)
        except SecurenbError as exc:
            problems.append(str(exc))
        else:
            if kind == "tink-streaming-aead":
                kind = "securenb-dataset"
            else:
                problems.append(at(path, f"has a manifest but its content is {kind}, "
                                         "not a Tink AES-GCM-HKDF stream"))
            manifest = record.manifest.model_dump(mode="json", by_alias=True, exclude_none=True)
            key = {"kek_uri": record.key.kek_uri, "kek_id": record.key.kek_id,
                   "algorithm": record.key.algorithm}
            if size != record.manifest.ciphertext.size:
                problems.append(at(path, f"is {size} bytes; the manifest says "
                                         f"{record.manifest.ciphertext.size}"))
            if verify_digest:
                digest_ok = file_sha256(path)[0] == record.manifest.ciphertext.sha256
                if not digest_ok:
                    problems.append(at(path, "ciphertext digest is not the manifest's"))
    return Inspection(str(path), kind, size, header, manifest, key, digest_ok, tuple(problems))
