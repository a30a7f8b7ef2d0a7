"""SARIF 2.1.0 output, for code-scanning dashboards and CI annotations.

One result per finding, located by file URI and byte offset, with the archive member as
a logical location. Every rule the scanner knows is declared in the driver so that a
dashboard can explain it; UNSAFE findings are errors, UNKNOWN ones warnings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from securenb.scan.report import Finding, ScanReport, Severity, Verdict
from securenb.scan.rules import RULES

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_SECURITY_SEVERITY = {
    Severity.CRITICAL: "9.5",
    Severity.HIGH: "8.0",
    Severity.MEDIUM: "5.5",
    Severity.LOW: "3.0",
    Severity.INFO: "0.0",
}


def _level(finding: Finding) -> str:
    if finding.verdict is Verdict.UNSAFE:
        return "error"
    return "warning" if finding.verdict is Verdict.UNKNOWN else "note"


def _uri(path: str) -> str:
    p = Path(path)
    return p.resolve().as_uri() if p.is_absolute() or p.exists() else p.as_posix()


def _result(finding: Finding, index: dict[str, int]) -> dict[str, Any]:
    location: dict[str, Any] = {
        "physicalLocation": {"artifactLocation": {"uri": _uri(finding.path)}},
    }
    if finding.offset is not None and finding.member is None:
        location["physicalLocation"]["region"] = {"byteOffset": finding.offset, "byteLength": 1}
    if finding.member is not None:
        location["logicalLocations"] = [
            {"fullyQualifiedName": finding.member, "kind": "member"},
        ]
    properties: dict[str, Any] = {
        "verdict": finding.verdict.value,
        "severity": finding.severity.value,
        "security-severity": _SECURITY_SEVERITY[finding.severity],
    }
    if finding.construct is not None:
        properties["construct"] = finding.construct
    if finding.member is not None and finding.offset is not None:
        properties["memberOffset"] = finding.offset
    return {
        "ruleId": finding.rule,
        "ruleIndex": index[finding.rule],
        "level": _level(finding),
        "message": {"text": finding.message},
        "locations": [location],
        "properties": properties,
    }


def to_sarif(reports: list[ScanReport]) -> dict[str, Any]:
    """One SARIF log with one run covering every scanned path."""
    rules = list(RULES.values())
    index = {r.id: i for i, r in enumerate(rules)}
    version = reports[0].scanner_version if reports else ""
    results = [_result(f, index) for report in reports for f in report.all_findings()]
    artifacts = [
        {
            "location": {"uri": _uri(fr.path)},
            "length": fr.size,
            "properties": {"verdict": fr.verdict.value, "format": fr.format},
        }
        for report in reports
        for fr in report.files
    ]
    return {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "securenb-scan",
                        "version": version,
                        "informationUri": "https://securenb.dev/docs/scanning",
                        "rules": [
                            {
                                "id": r.id,
                                "name": r.id.replace(".", "/"),
                                "shortDescription": {"text": r.title},
                                "defaultConfiguration": {
                                    "level": "error"
                                    if r.verdict is Verdict.UNSAFE
                                    else "warning"
                                    if r.verdict is Verdict.UNKNOWN
                                    else "note"
                                },
                                "properties": {
                                    "verdict": r.verdict.value,
                                    "security-severity": _SECURITY_SEVERITY[r.severity],
                                },
                            }
                            for r in rules
                        ],
                    }
                },
                "artifacts": artifacts,
                "results": results,
                "properties": {
                    "verdicts": {report.target: report.verdict.value for report in reports},
                },
            }
        ],
    }
