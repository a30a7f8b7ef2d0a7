"""Errors of the data service, placed in the shared hierarchy of securenb.errors.

Exit codes follow the CLI contract: a file that was checked and found bad
(tampered, truncated, wrong digest, denied, invalid rows) is 1; a file that
could not be checked (not ours, no manifest) is 2.
"""

from __future__ import annotations

from securenb.errors import IntegrityError, SecurenbError, VerificationError


class DataFormatError(SecurenbError):
    """The file is not an encrypted dataset we can read (empty, foreign, no manifest)."""


class DecryptionError(IntegrityError):
    """A segment, the data key or the digest does not authenticate: tampered or wrong key."""


class AccessDenied(VerificationError):
    """The manifest does not list the caller's role among those allowed to decrypt."""


class DataValidationError(VerificationError):
    """Decrypted data breaks a rule of the manifest's schema (names column and rule)."""
