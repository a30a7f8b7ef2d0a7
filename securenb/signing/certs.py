"""X.509 helpers: who a certificate names, and whether it is valid now.

model-signing checks a certificate chain at the leaf's notBefore time, so an
expired certificate passes, and it applies no identity policy. We check the
time now (a key/certificate bundle has no trusted timestamp that could prove
an earlier signing time) and match the identity against the trust policy.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from securenb.errors import SecurenbError, at

# Fulcio's OIDC issuer extensions: v2 (DER UTF8String) supersedes v1 (raw bytes).
_OIDC_ISSUER_V2 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
_OIDC_ISSUER_V1 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1")


def load_pem_certificates(path: Path) -> list[x509.Certificate]:
    """Every certificate of a PEM file; an error naming the file if none."""
    try:
        certs = x509.load_pem_x509_certificates(path.read_bytes())
    except OSError as exc:
        raise SecurenbError(at(path, f"cannot read ({exc.strerror})")) from None
    except ValueError as exc:
        raise SecurenbError(at(path, f"not a PEM certificate ({exc})")) from None
    return certs


def subject_names(cert: x509.Certificate) -> list[str]:
    """What a policy ``subject`` may match: the subject DN, then every SAN value."""
    names = [cert.subject.rfc4514_string()] if len(cert.subject) else []
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return names
    for kind in (x509.RFC822Name, x509.UniformResourceIdentifier, x509.DNSName):
        names += [str(v) for v in san.get_values_for_type(kind)]
    return names


def issuer_name(cert: x509.Certificate) -> str:
    return cert.issuer.rfc4514_string()


def oidc_issuer(cert: x509.Certificate) -> str | None:
    """The OIDC issuer Fulcio wrote into a Sigstore certificate."""
    for oid, der in ((_OIDC_ISSUER_V2, True), (_OIDC_ISSUER_V1, False)):
        try:
            ext = cert.extensions.get_extension_for_oid(oid).value
        except x509.ExtensionNotFound:
            continue
        raw = ext.value if isinstance(ext, x509.UnrecognizedExtension) else b""
        return _der_utf8(raw) if der else raw.decode("utf-8", "replace")
    return None


def _der_utf8(raw: bytes) -> str | None:
    if len(raw) < 2 or raw[0] != 0x0C:
        return None
    length, start = raw[1], 2
    if length & 0x80:
        count = length & 0x7F
        length, start = int.from_bytes(raw[2 : 2 + count], "big"), 2 + count
    return raw[start : start + length].decode("utf-8", "replace")


def describe(cert: x509.Certificate) -> str:
    names = subject_names(cert)
    return names[0] if names else f"serial {cert.serial_number:x}"


def validity_problems(certs: Iterable[x509.Certificate], now: datetime | None = None) -> list[str]:
    """One message per certificate not valid at ``now`` (default: the current time)."""
    moment = now or datetime.now(timezone.utc)
    problems = []
    for cert in certs:
        if cert.not_valid_after_utc < moment:
            problems.append(f"certificate {describe(cert)} expired on "
                            f"{cert.not_valid_after_utc.isoformat()}")
        elif cert.not_valid_before_utc > moment:
            problems.append(f"certificate {describe(cert)} is not valid before "
                            f"{cert.not_valid_before_utc.isoformat()}")
    return problems


def may_sign_code(cert: x509.Certificate) -> bool:
    """digitalSignature key usage, or the codeSigning extended key usage (as model-signing)."""
    try:
        if cert.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature:
            return True
    except x509.ExtensionNotFound:
        pass
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return False
    return ExtendedKeyUsageOID.CODE_SIGNING in eku
