"""The gate's answer for one artifact: one line per rule, and the outcome they add up to.

PASS only if no rule failed and every required rule passed. A required check
that never ran, or ran and could not decide, is "unknown" and makes the
outcome INCOMPLETE: never a pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Status = Literal["pass", "fail", "unknown", "skipped"]
Outcome = Literal["PASS", "FAIL", "INCOMPLETE"]
EXIT_CODES: dict[str, int] = {"PASS": 0, "FAIL": 1, "INCOMPLETE": 2}


@dataclass(frozen=True)
class RuleResult:
    """One rule: what the workspace holds about it (``found``) and why it decided so."""

    rule: str
    required: bool
    status: Status
    found: str
    why: str
    evidence: str | None = None  # envelope digest of the attestation that decided

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"check": self.rule, "status": self.status,
                                "required": self.required, "found": self.found,
                                "detail": self.why}
        if self.evidence:
            data["evidence"] = f"sha256:{self.evidence}"
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RuleResult:
        """``to_json``'s inverse (a verdict the server sent a kernel)."""
        evidence = data.get("evidence")
        return cls(str(data["check"]), bool(data["required"]), data["status"],
                   str(data["found"]), str(data["detail"]),
                   str(evidence).removeprefix("sha256:") if evidence else None)


def outcome_of(rules: list[RuleResult]) -> Outcome:
    if any(r.status == "fail" for r in rules):
        return "FAIL"
    if any(r.status == "unknown" for r in rules):
        return "INCOMPLETE"
    return "PASS"


@dataclass(frozen=True)
class GateVerdict:
    """``securenb.gate.evaluate``'s result."""

    artifact: str
    digest: str
    rules: tuple[RuleResult, ...]
    policy_digest: str
    policy_source: str
    attestations: int
    attestation: str | None = None  # the gate attestation recording this verdict
    notes: tuple[str, ...] = field(default=())

    @property
    def outcome(self) -> Outcome:
        return outcome_of(list(self.rules))

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.outcome]

    def to_predicate(self) -> dict[str, Any]:
        """The ``gate/v1`` predicate (securenb/schemas/gate.v1.json)."""
        return {
            "verdict": "allow" if self.outcome == "PASS" else "deny",
            "outcome": self.outcome,
            "artifact": {"name": self.artifact, "sha256": self.digest},
            "checks": [r.to_json() for r in self.rules],
            "policyDigest": self.policy_digest,
            "attestations": self.attestations,
        }

    def to_json(self) -> dict[str, Any]:
        return {**self.to_predicate(), "policySource": self.policy_source,
                "attestation": f"sha256:{self.attestation}" if self.attestation else None,
                "notes": list(self.notes)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GateVerdict:
        """``to_json``'s inverse (a verdict the server evaluated for a kernel)."""
        if data.get("checks") is None or not isinstance(data.get("artifact"), dict):
            raise ValueError("not a gate verdict")
        recorded = data.get("attestation")
        verdict = cls(str(data["artifact"]["name"]), str(data["artifact"]["sha256"]),
                      tuple(RuleResult.from_json(c) for c in data["checks"]),
                      str(data["policyDigest"]), str(data["policySource"]),
                      int(data["attestations"]),
                      str(recorded).removeprefix("sha256:") if recorded else None,
                      tuple(str(n) for n in data.get("notes", ())))
        if verdict.outcome != data.get("outcome"):
            raise ValueError(f"outcome {data.get('outcome')!r} does not follow from its checks")
        return verdict

    def to_text(self) -> str:
        lines = [f"gate {self.outcome}: {self.artifact} (sha256:{self.digest[:16]}...)"]
        for r in self.rules:
            need = "required" if r.required else "optional"
            lines.append(f"  [{r.status.upper():>7}] {r.rule} ({need}): {r.found}; {r.why}")
        lines.append(f"  policy {self.policy_source} sha256:{self.policy_digest[:16]}..., "
                     f"{self.attestations} verified attestation(s) read")
        lines += [f"  note: {n}" for n in self.notes]
        if self.attestation:
            lines.append(f"  recorded: attestation sha256:{self.attestation}")
        return "\n".join(lines)

    def to_sarif(self) -> dict[str, Any]:
        """SARIF 2.1.0: one result per rule that did not pass (error: fail, warning: unknown)."""
        from securenb import __version__

        rules = [{"id": f"gate/{r.rule}", "shortDescription": {"text": f"gate rule {r.rule}"}}
                 for r in self.rules]
        uri = Path(self.artifact).as_posix()
        results = [
            {"ruleId": f"gate/{r.rule}", "ruleIndex": i,
             "level": "error" if r.status == "fail" else "warning",
             "message": {"text": f"{r.found}; {r.why}"},
             "locations": [{"physicalLocation": {"artifactLocation": {"uri": uri}}}],
             "properties": {"status": r.status, "required": r.required,
                            "sha256": self.digest}}
            for i, r in enumerate(self.rules) if r.status in ("fail", "unknown")
        ]
        return {
            "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
            "version": "2.1.0",
            "runs": [{"tool": {"driver": {"name": "securenb-gate", "version": __version__,
                                          "informationUri": "https://securenb.dev",
                                          "rules": rules}},
                      "results": results,
                      "properties": {"outcome": self.outcome,
                                     "policyDigest": self.policy_digest}}],
        }
