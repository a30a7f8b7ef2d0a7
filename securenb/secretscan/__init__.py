"""Secrets in notebooks and text files: find them (never show them), strip outputs, refuse."""

from securenb.secretscan.scan import (
    Finding,
    SecretsFound,
    refuse_if_secrets,
    scan_file,
    scan_notebook_json,
    scan_paths,
)
from securenb.secretscan.strip import StripResult, strip

__all__ = ["Finding", "SecretsFound", "StripResult", "refuse_if_secrets", "scan_file",
           "scan_notebook_json", "scan_paths", "strip"]
