"""Signed, auditable papermill runs: the ``securenb`` papermill engine and its records.

``engine`` is loaded by papermill through the ``papermill.engine`` entry point;
import it only after ``papermill.engines`` (see ``engine``'s docstring).
"""
