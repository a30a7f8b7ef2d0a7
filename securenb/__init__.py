"""securenb: secure ML pipelines in Jupyter.

Layers (dependencies point down): front-ends (cli, kernel, server) ->
services (isolation, signing, scan, fairness, gate, data, registry) ->
core (workspace store, attestations, audit log, keys, policy).
"""

__version__ = "0.1.0"


def load_ipython_extension(ipython: object) -> None:
    """``%load_ext securenb``: imports the kernel front-end only when asked for."""
    from securenb.kernel import load_ipython_extension as load

    load(ipython)


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """Where JupyterLab finds the prebuilt Security sidebar (``jupyter labextension develop``)."""
    return [{"src": "labextension", "dest": "securenb"}]
