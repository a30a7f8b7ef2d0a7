"""Bias check: group metrics and disparities of a binary classifier, equal to fairlearn's.

``assess`` computes them in one vectorised pass; ``record`` makes the result a
signed fairness attestation on the model's digest.
"""

from securenb.fairness.assess import assess
from securenb.fairness.inputs import FairnessInputError
from securenb.fairness.report import Check, FairnessReport, Group, Value, View

__all__ = ["Check", "FairnessInputError", "FairnessReport", "Group", "Value", "View", "assess"]
