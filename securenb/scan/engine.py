"""Scanning paths: one file, or a folder file by file, into a :class:`ScanReport`."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import BinaryIO

from securenb import __version__
from securenb.scan.allowlist import Allowlist
from securenb.scan.context import Ctx, FileState
from securenb.scan.dispatch import scan_source
from securenb.scan.options import ScanOptions
from securenb.scan.report import FileReport, Finding, ScanReport
from securenb.scan.rules import RULES
from securenb.scan.snapshot import read_stably
from securenb.scan.source import Source
from securenb.scan.unpickle_probe import warm_up

ProgressCallback = Callable[[int, int, str], None]
"""Called before each file with (index, total, path)."""
Digests = dict[str, tuple[str, int]]
"""A scanned file's path -> the (SHA-256 hex, size) of the bytes scanned."""


def _finding(rule: str, message: str, path: str) -> Finding:
    r = RULES[rule]
    return Finding(rule=rule, severity=r.severity, verdict=r.verdict, message=message, path=path)


def _inside(path: str, root: str) -> bool:
    return os.path.commonpath([path, root]) == root


def list_files(root: Path, options: ScanOptions) -> tuple[list[Path], list[FileReport]]:
    """Regular files under ``root`` (sorted), and reports for links and special files.

    Symbolic links are not followed: one that stays inside the folder points at a file
    scanned anyway, one that leaves it is reported.
    """
    files: list[Path] = []
    notes: list[FileReport] = []
    real_root = os.path.realpath(root)

    def unreadable(error: OSError) -> None:  # a skipped folder must not pass unnoticed
        where = str(error.filename or root)
        notes.append(
            FileReport(where, "unknown", 0, [_finding("fs.unreadable", str(error), where)])
        )

    for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable):
        dirnames.sort()
        for name in sorted(filenames) + [
            d for d in dirnames if os.path.islink(os.path.join(dirpath, d))
        ]:
            path = Path(dirpath, name)
            try:
                st = path.lstat()
            except OSError as exc:
                unreadable(exc)
                continue
            if stat.S_ISLNK(st.st_mode):
                target = os.path.realpath(path)
                if not _inside(target, real_root):
                    notes.append(
                        FileReport(
                            str(path),
                            "symlink",
                            0,
                            [_finding("fs.symlink-escape", f"link to {target}", str(path))],
                        )
                    )
            elif stat.S_ISREG(st.st_mode):
                files.append(path)
            else:
                notes.append(
                    FileReport(
                        str(path),
                        "special",
                        0,
                        [_finding("fs.special-file", "not a regular file: not read", str(path))],
                    )
                )
            if len(files) > options.max_members:
                notes.append(
                    FileReport(
                        str(root),
                        "folder",
                        0,
                        [
                            _finding(
                                "limit.exceeded",
                                f"more than {options.max_members} files",
                                str(root),
                            )
                        ],
                    )
                )
                return files[: options.max_members], notes
    return files, notes


def scan_open_file(
    fh: BinaryIO,
    name: str,
    allowlist: Allowlist,
    options: ScanOptions,
    referenced: set[str] | None = None,
) -> FileReport:
    """Scan an open regular file; every failure ends in a finding, never an exception."""
    warm_up()
    state = FileState(name, options, allowlist)
    if referenced is not None:
        state.referenced_data = referenced
    start = time.perf_counter()
    size = 0
    try:
        size = state.size = _size_of(fh)
        scan_source(Source(fh, 0, size), Ctx(state))
    except OSError as exc:
        state.add(_finding("fs.unreadable", f"cannot read: {exc.strerror or exc}", name))
    except (RecursionError, MemoryError) as exc:
        state.add(_finding("limit.exceeded", f"{type(exc).__name__} while scanning", name))
    except Exception as exc:
        state.add(_finding("scan.error", f"{type(exc).__name__}: {exc}", name))
    findings = state.finish()
    formats = list(dict.fromkeys(state.formats))[:4] or ["unknown"]
    return FileReport(
        path=name,
        format="/".join(formats),
        size=size,
        findings=findings,
        globals=sorted(state.globals),
        seconds=time.perf_counter() - start,
    )


def _size_of(fh: BinaryIO) -> int:
    try:
        return os.fstat(fh.fileno()).st_size
    except (OSError, ValueError):  # in-memory files
        return fh.seek(0, os.SEEK_END)


def scan_file(
    path: Path,
    allowlist: Allowlist,
    options: ScanOptions,
    referenced: set[str] | None = None,
    digests: Digests | None = None,
) -> FileReport:
    """Scan one file (a symlink given directly is followed); with ``digests``, note the
    digest of exactly the bytes scanned (securenb.scan.snapshot)."""
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            return FileReport(
                str(path),
                "special",
                0,
                [_finding("fs.special-file", "not a regular file: not read", str(path))],
            )
        with open(path, "rb") as fh:
            if digests is None:
                return scan_open_file(fh, str(path), allowlist, options, referenced)
            report, digest, size = read_stably(
                fh, path, lambda f: scan_open_file(f, str(path), allowlist, options, referenced))
            digests[str(path)] = (digest, size)
            return report
    except OSError as exc:
        return FileReport(
            str(path),
            "unknown",
            0,
            [_finding("fs.unreadable", f"cannot read: {exc.strerror or exc}", str(path))],
        )


def scan_path(
    path: str | os.PathLike[str],
    *,
    options: ScanOptions | None = None,
    extra_allowed_globals: list[str] | tuple[str, ...] | None = None,
    on_file: ProgressCallback | None = None,
    digests: Digests | None = None,
) -> ScanReport:
    """Scan a file or a folder (file by file) and return the report.

    ``extra_allowed_globals`` adds trusted globals (``module:qualname``, ``module.name``
    or ``module:*``) to the curated allowlist, typically from the workspace policy.
    To record the scan, pass ``digests``: ``digests[path]`` is set to the (SHA-256 hex,
    size) of exactly the bytes scanned (securenb.scan.snapshot), the only digest a record
    of this scan may name.
    Raises ``FileNotFoundError`` if ``path`` does not exist.
    """
    options = options or ScanOptions()
    if extra_allowed_globals:
        options = replace(
            options,
            extra_allowed_globals=(*options.extra_allowed_globals, *extra_allowed_globals),
        )
    allowlist = Allowlist(options.extra_allowed_globals)
    target = Path(path)
    if not target.exists():
        raise FileNotFoundError(f"{target}: no such file or folder")
    report = ScanReport(
        target=str(target), scanner_version=__version__, allowlist_extra=allowlist.extra
    )
    start = time.perf_counter()
    if target.is_dir():
        files, notes = list_files(target, options)
        report.files.extend(notes)
    else:
        files = [target]
    referenced: set[str] = set()
    for index, file in enumerate(files):
        if on_file is not None:
            on_file(index, len(files), str(file))
        report.files.append(scan_file(file, allowlist, options, referenced, digests))
    for fr in report.files:
        if os.path.realpath(fr.path) in referenced and all(
            f.rule == "format.unrecognized" for f in fr.findings
        ):
            fr.findings = []
            fr.format = "onnx-external-data"
    if not report.files:
        report.findings.append(_finding("scan.empty", "no files to scan", str(target)))
    report.seconds = time.perf_counter() - start
    return report
