"""The package sets a vulnerability check covers: this environment, a lock/requirements
file, or the environment a recorded run used.

Every set has a digest: SHA-256 over the RFC 8785 JSON of its sorted
``[name, version]`` pairs, the digest ``%%secure_train`` records for a run's
Python environment (``securenb.isolation.hostenv.packages_digest``), so a
check of that environment and the run's provenance name the same subject.
"""

from __future__ import annotations

import importlib.metadata
import sys
from dataclasses import dataclass
from pathlib import Path

from securenb.core.canonical import canonical_json, sha256_hex
from securenb.errors import SecurenbError, at


@dataclass(frozen=True)
class PackageSet:
    """Pinned packages and where they came from."""

    source: str
    packages: tuple[tuple[str, str], ...]  # sorted (name, version)

    @property
    def digest(self) -> str:
        return sha256_hex(canonical_json([list(p) for p in self.packages]))


def _sorted(pairs: set[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(pairs))


def environment(prefix: str | None = None) -> PackageSet:
    """The distributions installed in ``prefix`` (default: this interpreter's)."""
    prefix = prefix or sys.prefix
    site = [p for p in sys.path if p.startswith(prefix)] or [prefix]
    found = {(d.metadata["Name"] or "", d.version)
             for d in importlib.metadata.distributions(path=site)}
    return PackageSet(f"python environment {prefix}", _sorted(found))


def from_file(path: Path) -> PackageSet:
    """Pinned packages of a requirements file (``name==version``) or a TOML lock file with
    ``[[package]]`` tables (uv.lock, poetry.lock, pylock.toml)."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise SecurenbError(at(path, f"cannot read ({exc.strerror})")) from None
    if path.suffix in (".lock", ".toml"):
        return PackageSet(str(path), _sorted(_from_lock(path, text)))
    return PackageSet(str(path), _sorted(_from_requirements(path, text)))


def _from_lock(path: Path, text: str) -> set[tuple[str, str]]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SecurenbError(at(path, f"not TOML ({exc})")) from None
    found = set()
    for i, item in enumerate(data.get("package", data.get("packages", []))):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or \
                not isinstance(item.get("version"), str):
            raise SecurenbError(at(path, f"package entry {i} has no name and version"))
        found.add((item["name"], item["version"]))
    if not found:
        raise SecurenbError(at(path, "no [[package]] entries"))
    return found


def _from_requirements(path: Path, text: str) -> set[tuple[str, str]]:
    from packaging.requirements import InvalidRequirement, Requirement

    found = set()
    logical = text.replace("\\\n", " ")
    for number, raw in enumerate(logical.splitlines(), 1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith(("#", "-")):
            continue  # comments and options (--hash, -i, -r are not followed)
        line = line.split(" --", 1)[0].strip()
        try:
            req = Requirement(line)
        except InvalidRequirement as exc:
            raise SecurenbError(at(path, f"line {number}: {exc}")) from None
        pins = [s.version for s in req.specifier if s.operator in ("==", "===")]
        if len(pins) != 1 or "*" in pins[0]:
            raise SecurenbError(at(path, f"line {number}: {req.name} is not pinned to one "
                                         "version (name==version); a range cannot be checked"))
        found.add((req.name, pins[0]))
    return found
