"""Where a project's workspace and policy are, read without heavy imports.

Kept apart from ``workspace`` and ``policy`` (which import pydantic, SQLite
and the audit log) so that code that must stay small, such as unlocking a key
before anything else is loaded (securenb.signing.unlock), finds them the same way.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from securenb.errors import PolicyError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

DIR_NAME = ".securenb"
CONFIG = "config.toml"
POLICY_FILE = "securenb.toml"
PYPROJECT = "pyproject.toml"


def workspace_root(start: Path | None = None) -> Path | None:
    """The nearest folder at or above ``start`` (default: cwd) holding a workspace."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / DIR_NAME / CONFIG).is_file():
            return folder
    return None


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file; errors name the file."""
    try:
        with open(path, "rb") as fh:
            data: dict[str, Any] = tomllib.load(fh)
            return data
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{path}: not valid TOML ({exc})") from exc
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read ({exc.strerror})") from exc


def find_policy_file(root: Path) -> tuple[Path, str] | None:
    """Return (file, table path) of the policy for the project at ``root``, if any.

    ``securenb.toml`` wins over ``pyproject.toml``; having both set is an error
    because one would silently shadow the other.
    """
    own = root / POLICY_FILE
    pyproject = root / PYPROJECT
    in_pyproject = pyproject.exists() and "securenb" in read_toml(pyproject).get("tool", {})
    if own.exists() and in_pyproject:
        raise PolicyError(
            f"{own}: policy is set both here and in {pyproject} [tool.securenb]; keep one"
        )
    if own.exists():
        return own, ""
    if in_pyproject:
        return pyproject, "tool.securenb"
    return None


def raw_policy(root: Path) -> tuple[Any, Path | None, str]:
    """The unvalidated policy of the project at ``root``: (parsed table, file, table path).

    ({}, None, "") when there is none.
    """
    found = find_policy_file(root)
    if found is None:
        return {}, None, ""
    path, table = found
    data: Any = read_toml(path)
    for part in table.split(".") if table else ():
        data = data[part]
    return data, path, table
