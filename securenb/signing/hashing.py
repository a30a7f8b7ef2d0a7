"""Hash a model (a file or a folder) into model-signing's own manifest.

Why not ``model_signing.hashing``: we need a progress callback, BLAKE3 in
bounded memory (the library memory-maps whole files, so its RSS grows with the
model) and one walk shared by signing and verifying. The manifest is built
from the library's types, so the signed payload is the one the library would
produce and its verifier accepts ours.

SHA-256 streams 1 MiB ``readinto`` chunks (hashlib releases the GIL, so the
files of a folder are hashed in parallel); BLAKE3 hashes 16 MiB memory-mapped
windows with its own threads. Peak memory is a few windows, whatever the size.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import stat
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from securenb.errors import SecurenbError, at
from securenb.signing.options import HASH_ALGORITHMS as HASH_ALGORITHMS
from securenb.signing.options import HashAlgorithm as HashAlgorithm
from securenb.signing.paths import open_regular

if TYPE_CHECKING:
    from model_signing import manifest as ms_manifest

GIT_PATHS = (".git", ".gitattributes", ".github", ".gitignore")  # model-signing ignores these
_CHUNK = 1 << 20
_WINDOW = 16 << 20

Progress = Callable[[int], None]
"""Called with the number of bytes just hashed (from worker threads)."""


@dataclass(frozen=True)
class ModelFile:
    """One file of a model: its manifest name (POSIX, relative; "." for a file model)."""

    name: str
    path: Path
    size: int


def model_name(model: Path) -> str:
    """The name model-signing records as the statement subject: the last path component."""
    return Path(os.path.abspath(model)).name


def list_files(model: Path, ignore: Iterable[str] = ()) -> list[ModelFile]:
    """Regular files of ``model`` minus ``ignore`` (paths relative to it).

    Symbolic links and special files are errors, as in model-signing: a link
    could point the verifier at content the signer never saw.
    """
    model = Path(model)
    try:
        st = os.lstat(model)
    except OSError as exc:
        raise SecurenbError(at(model, f"cannot read the model ({exc.strerror})")) from None
    if stat.S_ISREG(st.st_mode):
        return [ModelFile(".", model, st.st_size)]
    if not stat.S_ISDIR(st.st_mode):
        raise SecurenbError(at(model, "not a regular file or folder (symlinks are refused)"))
    ignored = {PurePosixPath(p) for p in ignore}
    files: list[ModelFile] = []

    def fail(exc: OSError) -> None:
        raise SecurenbError(at(exc.filename, f"cannot read ({exc.strerror})"))

    for folder, dirs, names in os.walk(model, onerror=fail):
        rel_folder = PurePosixPath(Path(folder).relative_to(model).as_posix())
        for name in sorted(dirs):
            path = Path(folder, name)
            if _is_ignored(rel_folder / name, ignored):
                dirs.remove(name)
            elif path.is_symlink():
                raise SecurenbError(at(path, "is a symbolic link; models may not contain links"))
        for name in names:
            rel = rel_folder / name
            if _is_ignored(rel, ignored):
                continue
            path = Path(folder, name)
            st = os.lstat(path)
            if not stat.S_ISREG(st.st_mode):
                kind = "a symbolic link" if stat.S_ISLNK(st.st_mode) else "not a regular file"
                raise SecurenbError(at(path, f"is {kind}; models may contain only regular files"))
            files.append(ModelFile(rel.as_posix(), path, st.st_size))
    return files


def _is_ignored(rel: PurePosixPath, ignored: set[PurePosixPath]) -> bool:
    return any(rel == p or p in rel.parents for p in ignored)


def hash_file(path: Path, algorithm: HashAlgorithm, progress: Progress | None = None) -> bytes:
    """Digest of one file, streamed (SHA-256) or by memory-mapped windows (BLAKE3)."""
    fd = open_regular(path, "model files")  # the file listed, not a link swapped in since
    try:
        with open(fd, "rb", buffering=0) as fh:
            if algorithm == "blake3":
                return _blake3(fh.fileno(), progress)
            return _sha256(fh, progress)
    except OSError as exc:
        raise SecurenbError(at(path, f"cannot read ({exc.strerror})")) from None


def sha256_of_signed(path: Path, algorithm: HashAlgorithm, signed_hex: str) -> str:
    """The SHA-256 hex digest of ``path``, from a read whose ``algorithm`` digest must be
    ``signed_hex`` (the manifest's).

    The workspace names files by SHA-256; a model signed with BLAKE3 is read once more to
    get it, and a file swapped in after it was hashed for the signature must not be
    recorded as signed. Both digests come from the same bytes, so they name one file."""
    fd = open_regular(path, "model files")
    try:
        with open(fd, "rb", buffering=0) as fh:
            sha = hashlib.sha256()
            other = hashlib.sha256() if algorithm == "sha256" else _new_blake3()
            buf = bytearray(_CHUNK)
            view = memoryview(buf)
            while n := fh.readinto(buf):
                sha.update(view[:n])
                other.update(view[:n])
    except OSError as exc:
        raise SecurenbError(at(path, f"cannot read ({exc.strerror})")) from None
    if other.hexdigest() != signed_hex:
        raise SecurenbError(at(path, "changed while it was being signed; sign it again"))
    return sha.hexdigest()


def _new_blake3() -> Any:
    import blake3

    return blake3.blake3(max_threads=blake3.blake3.AUTO)


def _sha256(fh: Any, progress: Progress | None) -> bytes:
    h = hashlib.sha256()
    buf = bytearray(_CHUNK)
    view = memoryview(buf)
    while n := fh.readinto(buf):
        h.update(view[:n])
        if progress:
            progress(n)
    return h.digest()


def _blake3(fd: int, progress: Progress | None) -> bytes:
    h = _new_blake3()
    size = os.fstat(fd).st_size
    offset = 0
    while offset < size:
        length = min(_WINDOW, size - offset)
        with mmap.mmap(fd, length, offset=offset, access=mmap.ACCESS_READ) as window:
            h.update(window)
        offset += length
        if progress:
            progress(length)
    digest: bytes = h.digest()
    return digest


def hash_model(
    model: Path,
    algorithm: HashAlgorithm = "sha256",
    ignore: Sequence[str] = (),
    progress: Progress | None = None,
) -> ms_manifest.Manifest:
    """Manifest of ``model`` as model-signing's file serialization defines it.

    ``ignore`` (relative paths) is recorded in the manifest; the git paths
    model-signing always ignores are added, so its verifier agrees with ours.
    """
    # Deferred: importing any part of model_signing imports all of it (sigstore,
    # requests, protobuf: ~20 MB), which callers that only list files do not need.
    from model_signing import manifest as ms_manifest
    from model_signing._hashing.hashing import Digest

    recorded = sorted({*ignore, *GIT_PATHS})
    files = list_files(model, recorded)
    workers = 1 if algorithm == "blake3" else max(1, min(len(files), os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        digests = list(
            pool.map(lambda f: hash_file(f.path, algorithm, progress), files)
        )
    serialization = ms_manifest.SerializationType.from_args(
        {"method": "files", "hash_type": algorithm, "allow_symlinks": False,
         "ignore_paths": recorded}
    )
    items = [
        ms_manifest.FileManifestItem(path=PurePosixPath(f.name), digest=Digest(algorithm, d))
        for f, d in zip(files, digests, strict=True)
    ]
    return ms_manifest.Manifest(model_name(model), items, serialization)


def total_size(model: Path, ignore: Sequence[str] = ()) -> int:
    """Bytes :func:`hash_model` will read: the total of a progress bar."""
    return sum(f.size for f in list_files(model, [*ignore, *GIT_PATHS]))


def root_digest(manifest: ms_manifest.Manifest) -> str:
    """The statement subject digest: SHA-256 over the resource digests in manifest order."""
    h = hashlib.sha256()
    for descriptor in manifest.resource_descriptors():
        h.update(descriptor.digest.digest_value)
    return h.hexdigest()
