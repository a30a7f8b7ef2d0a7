"""The parent's side of the data boundary: stage inputs, vet outputs, never unpickle.

Encrypted datasets (``--inputs NAME=PATH``) cross as ciphertext, and their data
key never does: the key is unwrapped here (role checked), the dataset decrypted
here as a stream and re-encrypted, without touching the disk in plaintext, under
a fresh key of the sandbox's own into the sandbox's inbox. The sandbox gets that
copy and its one-time key (in the run's setup message, never its environment),
which opens nothing else. In a kernel of a securenb server, the server does
that instead (securenb.server.datasets): it checks the role of the kernel's users,
holds the KEK and stages the copy, so no key of the dataset ever enters this
process; a refusal there fails the run (never a fallback to unwrapping here).
Data policy (``require_encrypted``, ``require_validated``) is checked here,
before any sandbox starts.

Outputs arrive as host copies made by ``outbox.collect`` (regular files the
sandbox cannot reach any more, digests of the bytes copied). Each is classified
by its content, not its name: safetensors, NumPy without object dtype,
Parquet, JSON, text and PNG/JPEG images pass; pickles, torch ``.pt`` archives
and anything unknown are rejected (never loaded, never recorded as
artifacts). Classifying and loading read with bounded memory. Input digests
are cached by (inode, size, mtime, ctime): a file rewritten in place changes
its ctime, which no caller can set back.
"""

from __future__ import annotations

import ast
import codecs
import hashlib
import json
import os
import stat
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from securenb.core.policy import DataPolicy
from securenb.data.data_key import DataKey
from securenb.data.dataset import data_key_for, encrypt_from, manifest_of, open_encrypted
from securenb.data.kek import LocalKek
from securenb.data.manifest import (
    SIDECAR_SUFFIX,
    DatasetFile,
    Manifest,
    read_sidecar,
    sidecar_path,
)
from securenb.errors import SecurenbError
from securenb.isolation.errors import IsolationError, UnsafeOutputError
from securenb.isolation.outbox import Copied, printable
from securenb.sandbox import formats
from securenb.sandbox._session import VARIABLES
from securenb.sandbox.checkpoint import CHECKPOINTS, MANIFEST
from securenb.signing.remote import RemoteSigner

_CHUNK = 1 << 20
_TEXT_SUFFIXES = {".txt", ".csv", ".tsv", ".md", ".log", ".jsonl", ".yaml", ".yml"}
MEDIA_TYPES = {
    "safetensors": "application/vnd.safetensors",
    "npy": "application/x-npy",
    "parquet": "application/vnd.apache.parquet",
    "json": "application/json",
    "text": "text/plain",
    "png": "image/png",
    "jpeg": "image/jpeg",
}


@dataclass(frozen=True)
class StagedInput:
    name: str
    kind: str
    file: str
    sha256: str

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "kind": self.kind, "file": self.file, "sha256": self.sha256}


@dataclass(frozen=True)
class OutputFile:
    path: Path
    sha256: str
    size: int
    format: str  # a MEDIA_TYPES key, or "rejected"
    reason: str = ""


@dataclass
class DigestCache:
    """(device, inode, size, mtime_ns, ctime_ns) -> sha256: unchanged inputs are not
    rehashed."""

    entries: dict[tuple[int, int, int, int, int], str] = field(default_factory=dict)

    def digest_fd(self, fd: int, st: os.stat_result) -> str:
        key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        found = self.entries.get(key)
        if found is None:
            found = _hash_fd(fd)
            self.entries[key] = found
        return found

    def digest_path(self, path: Path) -> str:
        fd = _open_regular(path)
        try:
            return self.digest_fd(fd, os.fstat(fd))
        finally:
            os.close(fd)


def _hash_fd(fd: int) -> str:
    h = hashlib.sha256()
    os.lseek(fd, 0, os.SEEK_SET)
    while chunk := os.read(fd, _CHUNK):
        h.update(chunk)
    return h.hexdigest()


def _open_regular(path: Path, dir_fd: int | None = None) -> int:
    """Open a plain file without following a symlink; refuse FIFOs, devices, sockets.

    With ``dir_fd`` only ``path.name`` is opened, relative to that open folder."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path.name, flags, dir_fd=dir_fd) if dir_fd is not None else os.open(
            path, flags)
    except OSError as exc:
        raise UnsafeOutputError(f"{path}: not a plain file ({exc.strerror})") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UnsafeOutputError(f"{path}: not a plain file")
    return fd


# -- inputs ---------------------------------------------------------------------------
def stage_variables(values: dict[str, Any], folder: Path) -> list[StagedInput]:
    """Write each variable in its safe format into ``folder`` (the sandbox inbox)."""
    if values:
        folder.mkdir(parents=True, exist_ok=True)
    staged = []
    for name, value in values.items():
        try:
            path = formats.save(value, folder / name)
        except formats.UnsafeValueError as exc:
            raise IsolationError(f"--inputs {name}: {exc}") from None
        os.chmod(path, 0o444)
        staged.append(StagedInput(name, formats.kind_of(value), str(path),
                                  DigestCache().digest_path(path)))
    return staged


def tree_digest(path: Path, cache: DigestCache) -> str:
    """Digest of a file, or of a folder as sorted (relative path, file digest) pairs."""
    if path.is_file():
        return cache.digest_path(path)
    entries = []
    for folder, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            item = Path(folder) / name
            if item.is_symlink() or not item.is_file():
                continue
            entries.append([item.relative_to(path).as_posix(), cache.digest_path(item)])
    return hashlib.sha256(json.dumps(entries).encode()).hexdigest()


# -- encrypted datasets ------------------------------------------------------------------
@dataclass(frozen=True)
class DatasetInput:
    """An encrypted dataset of ``--inputs``; its data key is never held here."""

    name: str  # what the cell passes to securenb.sandbox.read_csv(...) and friends
    item: str  # as written in --inputs, for error messages
    path: Path  # the ciphertext, resolved
    record: DatasetFile
    sha256: str  # of the ciphertext as hashed now (equal to the manifest's)

    @property
    def manifest(self) -> Manifest:
        return self.record.manifest



@dataclass(frozen=True)
class StagedDataset:
    """A dataset's copy for one sandbox: its own ciphertext and one-time key."""

    path: Path
    manifest_sha256: str
    key: DataKey

    def session(self, require_schema: bool) -> dict[str, Any]:
        """What the sandbox is told: where the copy is, and the key that opens only it."""
        return {"path": str(self.path), "key": self.key.to_secret(),
                "manifest_sha256": self.manifest_sha256, "require_schema": require_schema}


@dataclass(frozen=True)
class ServerRelease:
    """A dataset the securenb server agreed to release to this kernel: the server stages
    each copy; no key of the dataset is ever held here."""

    server: RemoteSigner
    role: str | None

    def stage(self, ds: DatasetInput, folder: Path) -> StagedDataset:
        folder.mkdir(mode=0o755, exist_ok=True)  # the server writes only where no one else can
        answer = self.server._call("/v1/dataset-stage", {
            "path": str(ds.path), "role": self.role, "folder": str(folder)})
        target = Path(str(answer["path"]))
        if target.parent != folder or target.is_symlink() or not target.is_file():
            raise IsolationError(f"--inputs {ds.item}: the server staged {target}, not a file "
                                 f"of {folder}")
        return StagedDataset(target, str(answer["manifest_sha256"]),
                             DataKey.from_secret(str(answer["key"]), "the server's answer"))


DatasetKey = DataKey | ServerRelease


def stage_dataset(ds: DatasetInput, key: DatasetKey, folder: Path) -> StagedDataset:
    """Re-encrypt ``ds`` (decrypted as a stream, in memory) under a fresh key into
    ``folder``, which the sandbox reads; the original data key stays here (or, released
    by a server, is never here)."""
    if isinstance(key, ServerRelease):
        return key.stage(ds, folder)
    folder.mkdir(exist_ok=True)
    target = folder / f"{ds.sha256[:16]}-{uuid.uuid4().hex[:8]}.enc"
    one_time = LocalKek.generate()
    manifest = ds.manifest
    with open_encrypted(ds.path, data_key=key, verify_digest=True) as plain:
        encrypt_from(plain, target, name=manifest.name, kek=one_time,
                     schema=manifest.schema_, media_type=manifest.media_type)
    for item in (target, sidecar_path(target)):
        os.chmod(item, 0o444)
    return StagedDataset(target, manifest_of(target).digest(), data_key_for(target, one_time))


def is_dataset(path: Path) -> bool:
    """True for the ciphertext of a dataset: a valid manifest beside it, and its size."""
    if not sidecar_path(path).is_file():
        return False
    try:
        return read_sidecar(path).manifest.ciphertext.size == path.stat().st_size
    except (SecurenbError, OSError):
        return False


def open_datasets(declared: list[tuple[str, str, Path]], cache: DigestCache) -> list[DatasetInput]:
    """Each (name, item, path) as a DatasetInput, its ciphertext hashed and checked now."""
    found: list[DatasetInput] = []
    for name, item, path in declared:
        if any(d.name == name for d in found):
            raise IsolationError(f"--inputs {item}: dataset name {name!r} is used twice")
        try:
            record = read_sidecar(path)
        except SecurenbError as exc:
            raise IsolationError(f"--inputs {item}: not an encrypted dataset ({exc})") from None
        digest = cache.digest_path(path)
        if digest != record.manifest.ciphertext.sha256:
            raise IsolationError(f"--inputs {item}: {path}: its digest is not the manifest's "
                                 "(replaced or damaged after encryption)")
        found.append(DatasetInput(name, item, path.resolve(), record, digest))
    return found


def dataset_keys(datasets: list[DatasetInput], role: str | None,
                 kek: str | None) -> dict[str, DatasetKey]:
    """Unwrap each data key (role checked first), by dataset name; they stay here.

    In a kernel of a securenb server the server decides instead (for the roles of
    the kernel's users; ``role`` names the one asked for) and keeps the keys: each
    dataset is a ServerRelease, and ``kek`` is not used."""
    server = RemoteSigner.for_this_kernel() if datasets else None
    keys: dict[str, DatasetKey] = {}
    for ds in datasets:
        try:
            if server is not None:
                server._call("/v1/dataset-check", {"path": str(ds.path), "role": role})
                keys[ds.name] = ServerRelease(server, role)
            else:
                keys[ds.name] = data_key_for(ds.path, kek, role=role, record=ds.record)
        except SecurenbError as exc:
            raise type(exc)(f"--inputs {ds.item}: dataset {ds.name!r}: {exc}") from None
    return keys


def _plain_files(path: Path) -> list[Path]:
    """Files under an input path that are neither a dataset's ciphertext nor its manifest."""
    files = [path] if path.is_file() else sorted(
        p for p in path.rglob("*") if p.is_file() and not p.is_symlink())
    return [p for p in files if not is_dataset(p) and not _is_manifest(p)]


def _is_manifest(path: Path) -> bool:
    ciphertext = path.name.removesuffix(SIDECAR_SUFFIX)
    return ciphertext not in ("", path.name) and is_dataset(path.with_name(ciphertext))


def check_data_policy(policy: DataPolicy, where: str, paths: list[tuple[str, Path]],
                      datasets: list[DatasetInput]) -> None:
    """Refuse, before any sandbox starts, inputs that data policy rules out.

    ``where`` names the policy table and file; ``paths`` are the (item, path)
    inputs that are not datasets (folders are searched file by file)."""
    if policy.require_encrypted:
        for item, path in paths:
            plain = _plain_files(path)
            if plain:
                raise IsolationError(
                    f"--inputs {item}: {plain[0]} is not encrypted, and policy "
                    f"require_encrypted = true ({where}) admits only encrypted datasets; "
                    f"encrypt it with `securenb data encrypt {plain[0]}` and pass NAME=FILE.enc"
                )
    if policy.require_validated:
        for ds in datasets:
            if ds.manifest.schema_ is None:
                raise IsolationError(
                    f"--inputs {ds.item}: dataset {ds.path} has no schema in its manifest, and "
                    f"policy require_validated = true ({where}) requires one; re-encrypt it "
                    "with `securenb data encrypt --schema FILE` (or --infer-schema)"
                )


# -- outputs ----------------------------------------------------------------------------
JSON_PARSE_LIMIT = 32 << 20  # a JSON output is parsed (to check it) only up to this size
LOAD_LIMIT = 2 << 30  # --outputs variables: most bytes a value may take once loaded


def vet(copied: list[Copied]) -> list[OutputFile]:
    """Classify the host copies of a run's outputs (see ``outbox.collect``)."""
    return [_classify(c.path, c.sha256) for c in copied]


def _classify(path: Path, sha256: str, dir_fd: int | None = None) -> OutputFile:
    try:
        fd = _open_regular(path, dir_fd)
    except UnsafeOutputError as exc:
        return OutputFile(path, sha256, 0, "rejected", str(exc))
    try:
        st = os.fstat(fd)
        head = os.read(fd, 4096)
        fmt, reason = _sniff(path, fd, head, st.st_size)
    finally:
        os.close(fd)
    return OutputFile(path, sha256, st.st_size, fmt, reason)


def _sniff(path: Path, fd: int, head: bytes, size: int) -> tuple[str, str]:
    """The format by content; ("rejected", why) for anything not known to be safe."""
    if path.suffix == ".safetensors" and size >= 8:
        return _safetensors_format(fd, head, size)
    if head.startswith(b"\x93NUMPY"):
        return _npy_format(head)
    if head.startswith(b"PAR1"):
        os.lseek(fd, max(size - 4, 0), os.SEEK_SET)
        return ("parquet", "") if os.read(fd, 4) == b"PAR1" else ("rejected", "truncated Parquet")
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png", ""
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg", ""
    if head[:1] in (b"\x80",) or head.startswith(b"PK\x03\x04"):
        return "rejected", "pickle or zip archive (e.g. torch.save): unsafe to load"
    if path.suffix == ".json" or path.suffix in _TEXT_SUFFIXES:
        return _text_format(path, fd, size)
    return "rejected", "unknown format (allowed: safetensors, npy, parquet, json, text, png, jpeg)"


def _npy_format(head: bytes) -> tuple[str, str]:
    try:
        header_len = int.from_bytes(head[8:10], "little") if head[6] == 1 else int.from_bytes(
            head[8:12], "little")
        start = 10 if head[6] == 1 else 12
        header = ast.literal_eval(head[start:start + header_len].decode("latin1"))
        descr = header["descr"]
    except (ValueError, SyntaxError, KeyError, IndexError, TypeError):
        return "rejected", "malformed .npy header"
    if descr == "|O" or "O" in str(descr):
        return "rejected", "object array (.npy with pickle)"
    return "npy", ""


def _safetensors_format(fd: int, head: bytes, size: int) -> tuple[str, str]:
    header_len = int.from_bytes(head[:8], "little")
    if header_len <= 0 or 8 + header_len > size or header_len > 100 << 20:
        return "rejected", "malformed safetensors header"
    os.lseek(fd, 8, os.SEEK_SET)
    try:
        json.loads(os.read(fd, header_len))
    except ValueError:
        return "rejected", "malformed safetensors header"
    return "safetensors", ""


def _text_format(path: Path, fd: int, size: int) -> tuple[str, str]:
    """UTF-8 checked in chunks; JSON parsed (depth-bounded by the parser) up to a size."""
    if path.suffix == ".json" and size > JSON_PARSE_LIMIT:
        return "rejected", (f"JSON larger than {JSON_PARSE_LIMIT >> 20} MiB (write large data "
                            "as Parquet, NumPy or safetensors)")
    os.lseek(fd, 0, os.SEEK_SET)
    decoder = codecs.getincrementaldecoder("utf-8")()
    parts: list[str] = []
    try:
        while chunk := os.read(fd, _CHUNK):
            text = decoder.decode(chunk)
            if path.suffix == ".json":
                parts.append(text)
        decoder.decode(b"", final=True)
        if path.suffix == ".json":
            json.loads("".join(parts))
    except RecursionError:
        return "rejected", "JSON nested too deeply"
    except ValueError:
        return "rejected", "not valid UTF-8 text / JSON"
    return ("json", "") if path.suffix == ".json" else ("text", "")


def load_variable(output_dir: Path, name: str, written: dict[Path, str]) -> Any:
    """Load ``--outputs NAME`` from ``<output>/variables`` with a pickle-free loader.

    Only a file this run wrote counts (``written``: path -> digest of its host copy);
    the bytes loaded are the ones read and checked here, within ``LOAD_LIMIT``."""
    folder = output_dir / VARIABLES
    candidates = [folder / f"{name}{s}" for s in sorted(set(formats.EXTENSIONS.values()))]
    present = [p for p in candidates if p in written]
    if len(present) != 1:
        raise IsolationError(f"--outputs {name}: expected this run to write one file "
                             f"{folder}/{name}.*, found {len(present)}")
    path = present[0]
    checked = _classify(path, written[path])
    if checked.format == "rejected":
        raise UnsafeOutputError(f"--outputs {name}: {checked.reason} ({path})")
    if checked.size > LOAD_LIMIT:
        raise UnsafeOutputError(f"--outputs {name}: {path} is larger than {LOAD_LIMIT} bytes")
    fd = _open_regular(path)
    try:
        data = _read_all(fd)
    finally:
        os.close(fd)
    if hashlib.sha256(data).hexdigest() != checked.sha256:
        raise UnsafeOutputError(f"--outputs {name}: {path} changed after the run")
    kind = formats.kind_of_bytes(path.suffix, data)
    if kind is None:
        raise UnsafeOutputError(f"--outputs {name}: unknown format {path.suffix}")
    if kind == "pandas" and formats.parquet_size(data) > LOAD_LIMIT:
        raise UnsafeOutputError(f"--outputs {name}: {path} would take more than {LOAD_LIMIT} "
                                "bytes once decompressed")
    return formats.load_bytes(data, kind)


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, _CHUNK):
        chunks.append(chunk)
    return b"".join(chunks)


def newest_verified_checkpoint(
    output_dir: Path, recorded: dict[tuple[str, str], str], relpath: Any
) -> tuple[dict[str, Any] | None, list[str]]:
    """Newest checkpoint whose files match its manifest and were recorded, all of them, at
    the end of the one run that wrote them; and why each newer one was passed over.

    ``recorded`` maps (project-relative path, sha256) of artifacts to the run that
    recorded them; ``relpath`` maps a Path to that relative form.
    """
    root = output_dir / CHECKPOINTS
    if not root.is_dir():
        return None, []
    skipped: list[str] = []
    for folder in sorted((p for p in root.iterdir() if p.name.startswith("step-")), reverse=True):
        if folder.is_symlink() or not folder.is_dir():
            continue
        try:
            manifest_digest = DigestCache().digest_path(folder / MANIFEST)
            manifest = json.loads(_read_small(folder / MANIFEST))
            files = {str(k): str(v) for k, v in manifest["files"].items()}
            problem = _checkpoint_problem(folder, files, manifest_digest, recorded, relpath)
        except (OSError, ValueError, KeyError, AttributeError, UnsafeOutputError) as exc:
            problem = f"unreadable ({exc})"
        if not problem and not isinstance(manifest.get("step"), int):
            problem = "its manifest has no step number"
        if problem:
            skipped.append(f"{folder.name}: {problem}")
            continue
        return {"path": str(folder), "step": manifest["step"], "files": files,
                "manifest_sha256": manifest_digest}, skipped
    return None, skipped


def _checkpoint_problem(folder: Path, files: dict[str, str], manifest_digest: str,
                        recorded: dict[tuple[str, str], str], relpath: Any) -> str:
    runs = {recorded.get((relpath(folder / MANIFEST), manifest_digest))}
    for name, digest in files.items():
        if "/" in name or not _name_ok(name):
            return f"bad file name {printable(name)!r} in its manifest"
        actual = DigestCache().digest_path(folder / name)
        if actual != digest:
            return f"{printable(name)} does not match its manifest (changed since it was written)"
        runs.add(recorded.get((relpath(folder / name), digest)))
    if None in runs:
        return "not recorded by the run that wrote it (written or changed outside a run)"
    if len(runs) != 1:
        return "its files were recorded by different runs"
    return ""


def _name_ok(name: str) -> bool:
    return name.isprintable() and name not in ("", ".", "..")


def _read_small(path: Path, limit: int = 1 << 20) -> bytes:
    fd = _open_regular(path)
    try:
        return os.read(fd, limit)
    finally:
        os.close(fd)
