"""Load a model file only after it scanned SAFE, through a loader that enforces the same rules.

The file is opened once and the very same open file is scanned and then loaded, so
swapping it between scan and load (rename over it) changes nothing. The loaders are
restricted too: ``torch.load(weights_only=True)``, and for pickles an unpickler whose
``find_class`` only returns allowlisted globals (checked callables wrapped so their
arguments are validated at call time). A scanner miss therefore still meets a second,
independent wall.
"""

from __future__ import annotations

import importlib
import io
import os
import pickle
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from securenb.errors import SecurenbError
from securenb.scan.allowlist import CHECKED, TEXT_CODECS, Allowlist, ArgCheck, resolve_name
from securenb.scan.engine import scan_open_file
from securenb.scan.formats.numpy_file import read_header
from securenb.scan.options import ScanOptions
from securenb.scan.report import FileReport, Verdict
from securenb.scan.source import Source

_TORCH_FORMATS = ("zip/pytorch-zip", "pickle/pytorch-legacy", "tar/pytorch-legacy-tar")
_JOBLIB_WRAPPER = "joblib.numpy_pickle:NumpyArrayWrapper"
_WRAPPERS = ("zlib/", "gzip/", "bzip2/", "xz/", "lzma/")


class ScanRefusedError(SecurenbError):
    """The file did not scan SAFE (or is of a kind safe_load does not load)."""

    def __init__(self, report: FileReport, reason: str | None = None) -> None:
        self.report = report
        self.exit_code = 1 if report.verdict is Verdict.UNSAFE else 2
        if reason is None:
            detail = "; ".join(f"{f.rule}: {f.message}" for f in report.findings[:3])
            reason = f"refusing to load ({report.verdict.value}): {detail}"
        super().__init__(f"{report.path}: {reason}")


def _lookup(module: str, qualname: str) -> Any:
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def resolve_global(allowlist: Allowlist, module: str, name: str) -> Any:
    """The object for an allowed global; checked callables come back wrapped."""
    check = CHECKED.get(f"{module}:{name}")
    if check is None:
        if not allowlist.allows(module, name):
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed")
        return _lookup(module, name)
    real = _lookup(module, name)
    return _CHECKED_WRAPPERS[check](allowlist, real)


def _checked_getattr(allowlist: Allowlist, real: Any) -> Callable[..., Any]:
    def guarded(obj: Any, attr: str) -> Any:
        owner = f"{getattr(obj, '__module__', '')}:{getattr(obj, '__qualname__', '')}.{attr}"
        module, _, qualname = owner.partition(":")
        if not attr.isidentifier() or not allowlist.allows(module, qualname):
            raise pickle.UnpicklingError(f"getattr {owner} is not allowed")
        return real(obj, attr)

    return guarded


def _checked_named(allowlist: Allowlist, real: Any) -> Callable[..., Any]:
    def guarded(module: str, name: str) -> Any:
        return resolve_global(allowlist, module, name)

    return guarded


def _checked_codec(allowlist: Allowlist, real: Any) -> Callable[..., Any]:
    def guarded(obj: Any, encoding: str = "utf-8", *rest: Any) -> Any:
        if encoding.lower().replace("_", "-") not in TEXT_CODECS:
            raise pickle.UnpicklingError(f"codec {encoding!r} is not allowed")
        return real(obj, encoding, *rest)

    return guarded


def _checked_types(allowlist: Allowlist, real: Any) -> Callable[..., Any]:
    def guarded(cls: Any, base: Any, state: Any) -> Any:
        if not isinstance(cls, type) or not isinstance(base, type):
            raise pickle.UnpicklingError("copyreg._reconstructor needs classes")
        return real(cls, base, state)

    return guarded


def _checked_torch_bytes(allowlist: Allowlist, real: Any) -> Callable[..., Any]:
    def guarded(data: bytes) -> Any:
        return _load_torch(io.BytesIO(data), "<nested torch bytes>", allowlist, None)

    return guarded


_CHECKED_WRAPPERS: dict[ArgCheck, Callable[[Allowlist, Any], Callable[..., Any]]] = {
    ArgCheck.GETATTR: _checked_getattr,
    ArgCheck.NAMED_GLOBAL: _checked_named,
    ArgCheck.TEXT_CODEC: _checked_codec,
    ArgCheck.GLOBAL_TYPES: _checked_types,
    ArgCheck.NESTED_TORCH: _checked_torch_bytes,
}


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that imports only allowlisted globals."""

    def __init__(self, file: IO[bytes], allowlist: Allowlist) -> None:
        super().__init__(file)
        self._allowlist = allowlist

    def find_class(self, module: str, name: str) -> Any:
        return resolve_global(self._allowlist, *resolve_name(module, name, 0))

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("persistent ids are not supported")


def _load_torch(fh: IO[bytes], name: str, allowlist: Allowlist, report: FileReport | None) -> Any:
    import torch

    extra = []
    for key in report.globals if report else []:
        module, _, qualname = key.partition(":")
        if key not in CHECKED and not module.startswith("torch"):
            extra.append(_lookup(module, qualname))
        if module.startswith("numpy"):  # weights_only BUILDs need each dtype's class
            import numpy.dtypes

            extra.extend(v for v in vars(numpy.dtypes).values() if isinstance(v, type))
    with torch.serialization.safe_globals(extra):
        return torch.load(fh, weights_only=True, map_location="cpu")


def _load_joblib(fh: IO[bytes], name: str, allowlist: Allowlist) -> Any:
    from joblib import numpy_pickle  # type: ignore[import-untyped]

    class Restricted(numpy_pickle.NumpyUnpickler):  # type: ignore[misc]
        dispatch = numpy_pickle.NumpyUnpickler.dispatch.copy()

        def find_class(self, module: str, qualname: str) -> Any:
            return resolve_global(allowlist, *resolve_name(module, qualname, self.proto))

        def load_build(self) -> None:
            target = self.stack[-2] if len(self.stack) > 1 else None
            if isinstance(target, numpy_pickle.NumpyArrayWrapper):
                pickle._Unpickler.load_build(self)  # type: ignore[attr-defined]
                wrapper = self.stack.pop()
                if wrapper.dtype.hasobject:
                    array = RestrictedUnpickler(self.file_handle, allowlist).load()
                else:
                    array = wrapper.read(self, self.ensure_native_byte_order)
                self.stack.append(array)
            else:
                numpy_pickle.NumpyUnpickler.load_build(self)

        dispatch[pickle.BUILD[0]] = load_build

    opener = (
        getattr(numpy_pickle, "_validate_fileobject_and_memmap", None)
        or numpy_pickle._read_fileobject
    )
    with opener(fh, name, None) as opened:
        fobj = opened[0] if isinstance(opened, tuple) else opened
        return Restricted(name, fobj, True).load()


def _load_npy(fh: IO[bytes], allowlist: Allowlist) -> Any:
    import numpy as np

    header = read_header(Source(fh))
    fh.seek(0)
    if isinstance(header, str):
        raise pickle.UnpicklingError(header)
    data, has_object = header
    if not has_object:
        return np.load(fh, allow_pickle=False)
    fh.seek(data)
    return RestrictedUnpickler(fh, allowlist).load()


def safe_load(
    path: str | os.PathLike[str],
    *,
    options: ScanOptions | None = None,
    extra_allowed_globals: list[str] | tuple[str, ...] | None = None,
) -> Any:
    """Scan ``path`` and load it only if SAFE: PyTorch, pickle, joblib or ``.npy`` files.

    Raises :class:`ScanRefusedError` (exit code 1 for UNSAFE, 2 for UNKNOWN or a kind of
    file it does not load).
    """
    options = options or ScanOptions()
    extra = (*options.extra_allowed_globals, *(extra_allowed_globals or ()))
    allowlist = Allowlist(extra)
    name = str(Path(path))
    with open(path, "rb") as fh:
        report = scan_open_file(fh, name, allowlist, options)
        if report.verdict is not Verdict.SAFE:
            raise ScanRefusedError(report)
        fh.seek(0)
        fmt = report.format
        try:
            if fmt.startswith(_TORCH_FORMATS):
                return _load_torch(fh, name, allowlist, report)
            wrapped = fmt.startswith(_WRAPPERS) and fmt.endswith("/pickle")
            if fmt == "pickle" or wrapped:
                if wrapped or _JOBLIB_WRAPPER in report.globals:
                    return _load_joblib(fh, name, allowlist)
                return RestrictedUnpickler(fh, allowlist).load()
            if fmt.startswith("npy"):
                return _load_npy(fh, allowlist)
        except (pickle.UnpicklingError, zlib.error, EOFError) as exc:
            raise ScanRefusedError(report, f"the restricted loader refused it: {exc}") from exc
    raise ScanRefusedError(report, f"safe_load does not load {fmt} files")
