"""Core layer: knows nothing of Jupyter. Store, attestations, audit log, keys, policy."""
