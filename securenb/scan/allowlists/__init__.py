"""Curated allowlists of the globals legitimate ML pickles reference, one module per ecosystem.

Each module exports ``GLOBALS``: exact ``module:qualname`` strings. The lists were built
by pickling real objects of each library and recording every global the unpickler asked
for, then reviewed by hand (file, network and process APIs removed).
"""

from securenb.scan.allowlists import boosting, joblib, numpy, pandas, python, sklearn, torch

CURATED: frozenset[str] = (
    boosting.GLOBALS
    | joblib.GLOBALS
    | numpy.GLOBALS
    | pandas.GLOBALS
    | python.GLOBALS
    | sklearn.GLOBALS
    | torch.GLOBALS
)
