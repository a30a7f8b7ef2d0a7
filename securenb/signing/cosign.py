"""``cosign sign-blob --key`` signatures, both ways.

cosign's ``.sig`` is the base64 of a DER ECDSA signature over the blob, hashed
with the curve's hash (SHA-256 for P-256; cosign 2.x also used SHA-256 for
P-384, newer releases SHA-384, so both are accepted when verifying). The blob
is hashed in a stream and signed pre-hashed, so a big file is never held in
memory. There is no key hint: every trusted key is tried.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from securenb.core.fsutil import atomic_write_bytes
from securenb.core.keys import PrivateKey
from securenb.errors import KeyError_, SecurenbError, at
from securenb.signing.paths import default_signature_path, read_signature
from securenb.signing.result import SignerInfo, Verification
from securenb.signing.trust import Trust

_CHUNK = 1 << 20


def digests(blob: Path, names: set[str]) -> dict[str, bytes]:
    """The ``names`` hashes (sha256, sha384) of ``blob`` in one streaming pass."""
    hashers = {name: hashlib.new(name) for name in sorted(names)}
    try:
        with open(blob, "rb", buffering=0) as fh:
            buf = bytearray(_CHUNK)
            view = memoryview(buf)
            while n := fh.readinto(buf):
                for h in hashers.values():
                    h.update(view[:n])
    except OSError as exc:
        raise SecurenbError(at(blob, f"cannot read ({exc.strerror})")) from None
    return {name: h.digest() for name, h in hashers.items()}


def _curve_hash(key: ec.EllipticCurvePublicKey) -> tuple[str, hashes.HashAlgorithm]:
    if isinstance(key.curve, ec.SECP384R1):
        return "sha384", hashes.SHA384()
    return "sha256", hashes.SHA256()


def sign_blob(blob: Path, key: PrivateKey, output: Path | None = None) -> tuple[Path, str]:
    """Write cosign's ``<blob>.sig``; return (signature path, sha256 hex of the blob)."""
    if not isinstance(key.key, ec.EllipticCurvePrivateKey):
        raise KeyError_(f"key {key.key_id[:16]} is {key.algorithm}: cosign blob signatures "
                        "here use ECDSA P-256 or P-384 keys")
    name, algorithm = _curve_hash(key.key.public_key())
    found = digests(blob, {name, "sha256"})
    signature = key.key.sign(found[name], ec.ECDSA(Prehashed(algorithm)))
    out = Path(output) if output else default_signature_path(blob)
    atomic_write_bytes(out, base64.b64encode(signature))
    return out, found["sha256"].hex()


def verify_blob(blob: Path, trust: Trust, signature: Path | None = None,
                raw: bytes | None = None) -> Verification:
    """Check a cosign signature of ``blob`` (its bytes ``raw`` if read already)."""
    blob = Path(blob)
    sig_path = Path(signature) if signature else default_signature_path(blob)
    text = raw if raw is not None else read_signature(sig_path)
    curves = {_curve_hash(k.key.key)[0] for k in trust.keys
              if isinstance(k.key.key, ec.EllipticCurvePublicKey)}
    found = digests(blob, {"sha256", *curves})

    def result(verified: bool, why: str, problems: tuple[str, ...],
               signer: SignerInfo | None = None) -> Verification:
        return Verification("blob", str(blob), str(sig_path), verified=verified, trust=why,
                            signer=signer, algorithm="cosign sign-blob (ECDSA)", files=1,
                            digest=found["sha256"].hex(), problems=problems)

    try:
        raw = base64.b64decode(b"".join(text.split()), validate=True)
    except binascii.Error as exc:
        return result(False, "not checked: unreadable signature",
                      (f"{sig_path}: not a base64 cosign signature ({exc})",))
    for candidate in trust.keys:
        key = candidate.key.key
        if not isinstance(key, ec.EllipticCurvePublicKey):
            continue
        if not _verifies(key, raw, found):
            continue
        signer = SignerInfo("key", key_id=candidate.key.key_id)
        if candidate.trusted:
            return result(True, f"trusted: {candidate.trusted}", (), signer)
        why = trust.untrusted(candidate)
        return result(False, f"untrusted: {why}", (f"valid signature, but {why}",), signer)
    return result(False, "not trusted: no trusted key verifies it", (
        f"{sig_path}: the signature does not verify with any of {len(trust.keys)} known key(s): "
        f"{blob} changed since it was signed, the signature was edited, or another key "
        "signed it",))


def _verifies(key: ec.EllipticCurvePublicKey, signature: bytes, found: dict[str, bytes]) -> bool:
    preferred, _ = _curve_hash(key)
    for name in dict.fromkeys((preferred, "sha256")):
        algorithm = hashes.SHA384() if name == "sha384" else hashes.SHA256()
        try:
            key.verify(signature, found[name], ec.ECDSA(Prehashed(algorithm)))
        except (InvalidSignature, ValueError):
            continue
        return True
    return False
