"""Adversarial robustness of torch classifiers (FGSM/PGD, L-inf), evaluated in a sandbox.

The attacks themselves (``securenb.robustness.attacks``) import torch; this
package's entry points do not, so the host never needs to load the model.
"""

from securenb.robustness.record import ROBUSTNESS_PREDICATE, record
from securenb.robustness.run import RobustnessResult, evaluate_in_sandbox

__all__ = ["ROBUSTNESS_PREDICATE", "RobustnessResult", "evaluate_in_sandbox", "record"]
