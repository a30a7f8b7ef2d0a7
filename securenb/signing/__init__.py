"""Signing service: models (OpenSSF model-signing), notebooks (embedded DSSE), cosign blobs.

Front-ends call :mod:`securenb.signing.service` (``sign``, ``verify``,
``sign_blob``), which records every signature and verification in the
workspace. See docs/signing.md.

The names below are loaded on first use (PEP 562), so that importing one part
(``securenb.signing.hashing``, ``securenb.signing.unlock``) does not import the
workspace, model_signing or nbformat: what a process imports before it unlocks
a key adds to the key's 64 MiB KDF buffer in its peak memory (docs/signing.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from securenb.core.lazy import exports

if TYPE_CHECKING:
    from securenb.signing.options import HASH_ALGORITHMS, SCOPES, HashAlgorithm, Scope
    from securenb.signing.record import SIGNATURE_PREDICATE, VERIFICATION_PREDICATE
    from securenb.signing.result import SignerInfo, SignResult, Verification
    from securenb.signing.service import SignRequest, sign, sign_blob, verify
    from securenb.signing.trust import Trust

_LAZY = {
    "HASH_ALGORITHMS": "options",
    "HashAlgorithm": "options",
    "SCOPES": "options",
    "Scope": "options",
    "SIGNATURE_PREDICATE": "record",
    "VERIFICATION_PREDICATE": "record",
    "SignerInfo": "result",
    "SignResult": "result",
    "Verification": "result",
    "SignRequest": "service",
    "sign": "service",
    "sign_blob": "service",
    "verify": "service",
    "Trust": "trust",
}

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


__getattr__ = exports(__name__, _LAZY)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
