"""The gate: may this artifact go on? One verdict from everything the workspace holds."""

from securenb.gate.evaluate import evaluate
from securenb.gate.verdict import GateVerdict, RuleResult

__all__ = ["GateVerdict", "RuleResult", "evaluate"]
