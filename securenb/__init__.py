"""securenb: secure ML pipelines in Jupyter.

Layers (dependencies point down): front-ends (cli, kernel, server) ->
services (isolation, signing, scan, fairness, gate, data, registry) ->
core (workspace store, attestations, audit log, keys, policy).
"""

__version__ = "0.1.0"
