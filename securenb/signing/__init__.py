"""Signing service: models (OpenSSF model-signing), notebooks (embedded DSSE), cosign blobs.

Front-ends call :mod:`securenb.signing.service` (``sign``, ``verify``,
``sign_blob``), which records every signature and verification in the
workspace. See docs/signing.md.
"""

from securenb.signing.hashing import HASH_ALGORITHMS, HashAlgorithm
from securenb.signing.notebook import SCOPES, Scope
from securenb.signing.record import SIGNATURE_PREDICATE, VERIFICATION_PREDICATE
from securenb.signing.result import SignerInfo, SignResult, Verification
from securenb.signing.service import SignRequest, sign, sign_blob, verify
from securenb.signing.trust import Trust

__all__ = [
    "HASH_ALGORITHMS",
    "SCOPES",
    "SIGNATURE_PREDICATE",
    "VERIFICATION_PREDICATE",
    "HashAlgorithm",
    "Scope",
    "SignRequest",
    "SignResult",
    "SignerInfo",
    "Trust",
    "Verification",
    "sign",
    "sign_blob",
    "verify",
]
