"""SARIF 2.1.0 for secret findings: one result per line that looks like it holds a secret."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from securenb.secretscan.scan import Finding


def to_sarif(findings: list[Finding]) -> dict[str, Any]:
    from securenb import __version__

    kinds = sorted({k for f in findings for k in f.kinds})
    results = []
    for f in findings:
        location: dict[str, Any] = {"physicalLocation": {
            "artifactLocation": {"uri": Path(f.path).as_posix()}}}
        if f.cell is None:
            location["physicalLocation"]["region"] = {"startLine": f.line}
        else:
            location["logicalLocations"] = [{"fullyQualifiedName": f"cell[{f.cell}]/{f.part}",
                                             "kind": "member"}]
        for kind in f.kinds:
            results.append({
                "ruleId": kind, "ruleIndex": kinds.index(kind), "level": "error",
                "message": {"text": f"possible {kind} at {f.where()} (value not shown)"},
                "locations": [location],
                "properties": {"cell": f.cell, "part": f.part, "line": f.line},
            })
    return {"$schema": "https://json.schemastore.org/sarif-2.1.0.json", "version": "2.1.0",
            "runs": [{"tool": {"driver": {"name": "securenb-secrets", "version": __version__,
                                          "rules": [{"id": k, "shortDescription": {"text": k}}
                                                    for k in kinds]}},
                      "results": results}]}
