"""Vulnerability findings, their severity, and the ``vulnerabilities/v1`` predicate."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

LEVELS = ("low", "medium", "high", "critical")


@dataclass(frozen=True)
class Finding:
    """One advisory affecting one installed package version."""

    package: str
    version: str
    id: str
    aliases: tuple[str, ...]
    summary: str
    severity: str  # low / medium / high / critical, or "unknown"
    score: float | None  # CVSS base score when the advisory has a vector
    vector: str | None
    affected: tuple[str, ...]
    fixed: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["aliases"], data["affected"], data["fixed"] = (
            list(self.aliases), list(self.affected), list(self.fixed))
        return data


def merge_aliases(findings: list[Finding]) -> list[Finding]:
    """One finding per advisory: records that alias each other (GHSA, PYSEC, CVE) for the
    same package version become one, keeping the best-rated record and every alias."""
    groups: list[list[Finding]] = []
    for finding in findings:
        names = {finding.id, *finding.aliases}
        for group in groups:
            same = group[0].package == finding.package and group[0].version == finding.version
            if same and any(names & {g.id, *g.aliases} for g in group):
                group.append(finding)
                break
        else:
            groups.append([finding])
    out = []
    for group in groups:
        best = max(group, key=lambda f: (f.severity in LEVELS, f.score or 0.0, f.id))
        aliases = sorted({n for g in group for n in (g.id, *g.aliases)} - {best.id})
        fixed = tuple(sorted({v for g in group for v in g.fixed}))
        out.append(replace(best, aliases=tuple(aliases), fixed=fixed or best.fixed))
    return out


def severity_of(record: dict[str, Any]) -> tuple[str, float | None, str | None]:
    """(level, CVSS base score, vector): the highest CVSS v3/v4 score, else the database's
    own label (GitHub's LOW/MODERATE/HIGH/CRITICAL), else "unknown"."""
    best: tuple[float, str] | None = None
    for entry in record.get("severity", []):
        vector = str(entry.get("score", ""))
        score = _cvss(entry.get("type", ""), vector)
        if score is not None and (best is None or score > best[0]):
            best = (score, vector)
    if best is not None:
        return _level(best[0]), best[0], best[1]
    label = str(record.get("database_specific", {}).get("severity", "")).lower()
    label = {"moderate": "medium"}.get(label, label)
    return (label if label in LEVELS else "unknown"), None, None


def _cvss(kind: str, vector: str) -> float | None:
    from cvss import CVSS3, CVSS4  # type: ignore[import-untyped, unused-ignore]
    from cvss.exceptions import CVSSError  # type: ignore[import-untyped, unused-ignore]

    try:
        if kind == "CVSS_V3":
            return float(CVSS3(vector).base_score)
        if kind == "CVSS_V4":
            return float(CVSS4(vector).base_score)
    except CVSSError:  # a malformed vector leaves the severity to the other fields
        return None
    return None


def _level(score: float) -> str:
    if score >= 9.0:
        return "critical"
    if score >= 7.0:
        return "high"
    return "medium" if score >= 4.0 else "low"


def at_or_above(severity: str, threshold: str) -> bool:
    """True if ``severity`` reaches ``threshold``; an unknown severity always does (an
    advisory nobody rated is not assumed harmless)."""
    if severity not in LEVELS:
        return True
    return LEVELS.index(severity) >= LEVELS.index(threshold)


@dataclass(frozen=True)
class VulnReport:
    """A check of one package set against one advisory database."""

    source: str
    digest: str
    packages: int
    database: str
    findings: tuple[Finding, ...]
    unchecked: tuple[tuple[str, str, str], ...] = ()  # (package, version, why)

    @property
    def complete(self) -> bool:
        """False if some package could not be checked: then "no finding" proves nothing."""
        return not self.unchecked

    def counts(self) -> dict[str, int]:
        out = {level: 0 for level in (*LEVELS, "unknown")}
        for f in self.findings:
            out[f.severity] += 1
        return out

    def to_predicate(self) -> dict[str, Any]:
        """The ``vulnerabilities/v1`` predicate (securenb/schemas/vulnerabilities.v1.json)."""
        return {"source": self.source, "packages": self.packages, "database": self.database,
                "counts": self.counts(), "findings": [f.to_json() for f in self.findings],
                "unchecked": [{"package": p, "version": v, "reason": why}
                              for p, v, why in self.unchecked]}

    def to_text(self) -> str:
        counts = ", ".join(f"{n} {k}" for k, n in self.counts().items() if n)
        lines = [f"{len(self.findings)} vulnerability finding(s) in {self.packages} packages "
                 f"of {self.source} ({counts or 'none'}; {self.database})"]
        for f in sorted(self.findings, key=lambda f: (-(f.score or 0), f.package, f.id)):
            score = f" {f.score:.1f}" if f.score is not None else ""
            aliases = f" ({', '.join(f.aliases)})" if f.aliases else ""
            fixed = f"fixed in {', '.join(f.fixed)}" if f.fixed else "no fix released"
            lines.append(f"  {f.severity.upper()}{score} {f.package} {f.version}: {f.id}"
                         f"{aliases}; {fixed}; {f.summary}")
        for package, version, why in self.unchecked:
            lines.append(f"  UNCHECKED {package} {version}: {why}")
        return "\n".join(lines)
