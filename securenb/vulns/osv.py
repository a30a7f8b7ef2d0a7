"""Match packages against OSV advisories: offline from an OSV export, or online via pip-audit.

Offline reads a folder of OSV JSON records (or the ``all.zip`` OSV publishes per
ecosystem), keeps the PyPI ones, and decides "affected" the way the OSV schema
defines it: the listed ``versions``, or ``ECOSYSTEM`` ranges whose events
(introduced / fixed / last_affected / limit) are ordered by PEP 440 with
``packaging``. Withdrawn advisories are skipped; ``GIT`` ranges (commits) are not
matched against released versions.
"""

from __future__ import annotations

import json
import zipfile
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from securenb.errors import SecurenbError, at
from securenb.vulns.report import Finding, severity_of


@dataclass
class OsvDatabase:
    """PyPI advisories by canonical package name."""

    source: str
    by_package: dict[str, list[dict[str, Any]]]
    records: int

    @classmethod
    def load(cls, folder: Path) -> OsvDatabase:
        if not folder.exists():
            raise SecurenbError(at(folder, "no such OSV export (a folder of OSV JSON, or a zip)"))
        by_package: dict[str, list[dict[str, Any]]] = defaultdict(list)
        count = 0
        for name, data in _documents(folder):
            try:
                record = json.loads(data)
            except ValueError as exc:
                raise SecurenbError(at(name, f"not OSV JSON ({exc})")) from None
            if not isinstance(record, dict) or "id" not in record:
                raise SecurenbError(at(name, "not an OSV record (no 'id')"))
            count += 1
            if record.get("withdrawn"):
                continue
            for affected in record.get("affected", []):
                package = affected.get("package", {})
                if package.get("ecosystem") == "PyPI" and package.get("name"):
                    by_package[canonicalize_name(package["name"])].append(record)
        return cls(str(folder), dict(by_package), count)

    def query(self, name: str, version: str) -> list[Finding]:
        try:
            parsed = Version(version)
        except InvalidVersion:
            return []
        out = []
        seen = set()
        for record in self.by_package.get(canonicalize_name(name), []):
            if record["id"] in seen:
                continue
            for affected in record.get("affected", []):
                package = affected.get("package", {})
                if package.get("ecosystem") != "PyPI" or \
                        canonicalize_name(package.get("name", "")) != canonicalize_name(name):
                    continue
                if _affects(affected, version, parsed):
                    seen.add(record["id"])
                    out.append(_finding(record, affected, name, version))
                    break
        return out


def _documents(folder: Path) -> Iterator[tuple[str, bytes]]:
    if folder.is_file() and zipfile.is_zipfile(folder):
        yield from _zip(folder)
        return
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.suffix == ".json":
            yield str(path), path.read_bytes()
        elif path.is_file() and path.suffix == ".zip":
            yield from _zip(path)


def _zip(path: Path) -> Iterator[tuple[str, bytes]]:
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if info.filename.endswith(".json") and not info.is_dir():
                yield f"{path}!{info.filename}", archive.read(info)


def _affects(affected: dict[str, Any], version: str, parsed: Version) -> bool:
    if version in affected.get("versions", []):
        return True
    for entry in affected.get("ranges", []):
        if entry.get("type") == "ECOSYSTEM" and _in_range(entry.get("events", []), parsed):
            return True
    return False


def _in_range(events: list[dict[str, str]], version: Version) -> bool:
    """OSV's evaluation: walk events in version order, toggling 'affected'."""
    def key(event: dict[str, str]) -> Version:
        value = next(iter(event.values()))
        return Version("0") if value == "0" else Version(value)

    try:
        ordered = sorted(events, key=key)
    except InvalidVersion:
        return False
    affected = False
    for event in ordered:
        kind, value = next(iter(event.items()))
        at_version = Version("0") if value == "0" else Version(value)
        if kind == "introduced" and version >= at_version:
            affected = True
        elif kind in ("fixed", "limit", "last_affected"):
            past = version > at_version if kind == "last_affected" else version >= at_version
            affected = affected and not past
    return affected


def _finding(record: dict[str, Any], affected: dict[str, Any], name: str,
             version: str) -> Finding:
    fixed = sorted({e["fixed"] for r in affected.get("ranges", []) if r.get("type") == "ECOSYSTEM"
                    for e in r.get("events", []) if "fixed" in e}, key=_version_key)
    ranges = []
    for r in affected.get("ranges", []):
        if r.get("type") != "ECOSYSTEM":
            continue
        start = end = None
        for event in r.get("events", []):
            if "introduced" in event:
                start = event["introduced"]
            elif "fixed" in event:
                end = f"<{event['fixed']}"
            elif "last_affected" in event:
                end = f"<={event['last_affected']}"
        ranges.append(f">={start or '0'},{end or 'any'}")
    level, score, vector = severity_of(record)
    return Finding(package=name, version=version, id=record["id"],
                   aliases=tuple(record.get("aliases", [])),
                   summary=str(record.get("summary") or record.get("details", ""))[:200],
                   severity=level, score=score, vector=vector, affected=tuple(ranges),
                   fixed=tuple(fixed))


def _version_key(text: str) -> Any:
    try:
        return (0, Version(text))
    except InvalidVersion:
        return (1, text)


def query_online(packages: list[tuple[str, str]], timeout: int = 15
                 ) -> tuple[list[Finding], list[tuple[str, str, str]]]:
    """Ask PyPI's vulnerability data (OSV) through pip-audit's service.

    Returns the findings and the packages that could not be checked, with the
    reason (pip-audit skips a package PyPI does not answer for: that is not "no
    vulnerabilities", and is reported as unchecked).
    """
    from pip_audit._service import (  # type: ignore[import-untyped, unused-ignore]
        ConnectionError as AuditConnectionError,
    )
    from pip_audit._service import (  # type: ignore[import-untyped, unused-ignore]
        PyPIService,
        ResolvedDependency,
        ServiceError,
        SkippedDependency,
    )

    service = PyPIService(timeout=timeout)
    out = []
    unchecked = []
    for name, version in packages:
        try:
            dep, results = service.query(ResolvedDependency(name=name, version=Version(version)))
        except (AuditConnectionError, ServiceError) as exc:
            raise SecurenbError(f"online vulnerability lookup of {name} {version} failed "
                                f"({exc}); use --osv-dir with a local OSV export") from None
        except InvalidVersion:
            unchecked.append((name, version, "not a PEP 440 version"))
            continue
        if isinstance(dep, SkippedDependency):
            unchecked.append((name, version, str(dep.skip_reason)))
            continue
        for result in results:
            out.append(Finding(package=name, version=version, id=str(result.id),
                               aliases=tuple(sorted(str(a) for a in result.aliases)),
                               summary=result.description[:200], severity="unknown",
                               score=None, vector=None, affected=(),
                               fixed=tuple(str(v) for v in result.fix_versions)))
    return out, unchecked
