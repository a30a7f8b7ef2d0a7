"""Remove the outputs that hold secrets from a notebook, atomically.

Only outputs are removed (the cell stays, its code unchanged); a secret in a
cell's source is the author's to remove and is reported, not edited.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from securenb.core.fsutil import atomic_write_bytes
from securenb.errors import SecurenbError, at
from securenb.secretscan.scan import Finding, scan_notebook_json


@dataclass(frozen=True)
class StripResult:
    removed: int  # outputs removed
    remaining: tuple[Finding, ...]  # findings left (in sources)


def strip(path: Path, output: Path | None = None) -> StripResult:
    """Write ``path`` (or ``output``) without the outputs that hold secrets."""
    try:
        nb = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise SecurenbError(at(path, f"cannot read the notebook ({exc})")) from None
    found = scan_notebook_json(nb, str(path))
    doomed: dict[int, set[int]] = {}
    for finding in found:
        if finding.in_output and finding.cell is not None:
            number = int(finding.part.split("]", 1)[0].removeprefix("outputs["))
            doomed.setdefault(finding.cell, set()).add(number)
    for cell_index, numbers in doomed.items():
        cell = nb["cells"][cell_index]
        cell["outputs"] = [o for i, o in enumerate(cell["outputs"]) if i not in numbers]
    target = output or path
    if doomed or output is not None:
        text = json.dumps(nb, indent=1, ensure_ascii=False) + "\n"
        atomic_write_bytes(target, text.encode())
    return StripResult(sum(len(v) for v in doomed.values()),
                       tuple(f for f in found if not f.in_output))
