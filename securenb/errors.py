"""Error types shared by every layer.

Every error carries a message that names the file (or key, or field) and the
problem, because the CLI prints it as is. ``exit_code`` is what the CLI exits
with (see docs/cli.md): 1 means "checked and found bad", 2 "could not check".
"""

from __future__ import annotations

from pathlib import Path


class SecurenbError(Exception):
    """Base class: a problem a user can act on, with a message naming it."""

    exit_code = 2


class VerificationError(SecurenbError):
    """Something was checked and is not what it claims (tampered, wrong signer)."""

    exit_code = 1


class IntegrityError(VerificationError):
    """Stored data does not match its digest or its signed record."""


class SignatureError(VerificationError):
    """A signature does not verify against the key it names."""


class WorkspaceError(SecurenbError):
    """The workspace is missing, locked, corrupt or otherwise unusable."""


class KeyError_(SecurenbError):
    """A key is missing, undecryptable (wrong passphrase) or of a wrong type."""


class PolicyError(SecurenbError):
    """The policy file is invalid; the message names the file and the key."""


class AuditError(VerificationError):
    """The audit log or one of its checkpoints fails verification."""


class AttestationError(VerificationError):
    """An attestation is malformed, unsigned or signed by an untrusted key."""


def at(path: Path | str, problem: str) -> str:
    """Format ``path: problem`` the same way everywhere."""
    return f"{path}: {problem}"
