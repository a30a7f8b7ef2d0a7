"""Verify a model-signing bundle, closing the gaps of the library's verifiers.

The library checks the bundle's signature (key, certificate chain, or
Sigstore) and returns the signed manifest; we add what it leaves out:

- a key must be in the trust policy (the bundle only carries a hint of it);
- a certificate must be valid now, and its subject/SAN and issuer must be an
  identity the policy allows under the root it chains to;
- a Sigstore certificate is checked offline against a pinned trusted root,
  with exact or regular-expression identities;
- the model's name is the one signed (the library treats it as informative);
- every difference between the signed and the actual files is named.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import io
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal, cast

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec
from model_signing import manifest as ms_manifest
from model_signing._signing import sign_certificate, sign_ec_key
from model_signing._signing import sign_sigstore_pb as sigstore_pb
from OpenSSL import crypto

from securenb.core.keys import PublicKey
from securenb.core.policy import Identity
from securenb.errors import SecurenbError, at
from securenb.signing import certs
from securenb.signing.hashing import (
    GIT_PATHS,
    HASH_ALGORITHMS,
    Progress,
    hash_model,
    model_name,
    root_digest,
)
from securenb.signing.paths import default_signature_path, read_signature, relative_inside
from securenb.signing.result import SignerInfo, Verification
from securenb.signing.trust import CandidateKey, Trust

_BUNDLE_ERRORS = (ValueError, KeyError, TypeError, IndexError, binascii.Error, InvalidSignature,
                  RecursionError)  # JSON nested past the parser's stack is corrupt, not a crash


class Rejected(Exception):
    """The signature itself cannot be accepted; carries the report so far."""

    def __init__(self, problem: str, trust: str, signer: SignerInfo | None = None) -> None:
        super().__init__(problem)
        self.problem, self.trust, self.signer = problem, trust, signer


@dataclass
class _Signed:
    manifest: ms_manifest.Manifest
    signer: SignerInfo
    trust: str
    trusted: bool
    signed_at: str | None = None
    problems: list[str] = field(default_factory=list)


class _KeyObjectVerifier(sign_ec_key.Verifier):
    """The library's elliptic-key verifier, given a key object rather than a PEM path."""

    def __init__(self, key: ec.EllipticCurvePublicKey) -> None:
        self._public_key = key


def verify_model(
    model: Path, trust: Trust, *, signature: Path | None = None, progress: Progress | None = None,
    raw: bytes | None = None,
) -> Verification:
    """Check ``model`` against its bundle (default: the sidecar ``<model>.sig``).

    The bundle is read once (``raw``, if the caller read it already): the key or
    certificate and the signature are checked on the same bytes.
    """
    model = Path(model)
    sig_path = Path(signature) if signature else default_signature_path(model)
    if not model.exists():
        raise SecurenbError(at(model, "no such model file or folder"))
    if raw is None:
        raw = read_signature(sig_path)
    try:
        signed = _check_signature(raw, sig_path, trust)
    except Rejected as exc:
        return Verification("model", str(model), str(sig_path), verified=False,
                            trust=exc.trust, signer=exc.signer, problems=(exc.problem,))
    problems = list(signed.problems)
    current = model_name(model)
    if signed.manifest.model_name != current:
        problems.append(f"model renamed: the signature is for {signed.manifest.model_name!r}, "
                        f"the model is now named {current!r}")
    serialization = signed.manifest.serialization_type
    inside = relative_inside(sig_path, model) if model.is_dir() else None
    ignore = [*serialization.get("ignore_paths", ()), *([inside] if inside else [])]
    digest = None
    try:
        actual = _hash_like(model, serialization, ignore, progress)
        problems += compare(signed.manifest, actual, model)
        digest = root_digest(actual)
    except SecurenbError as exc:
        problems.append(str(exc))
    notes = [f"{model / p}: present but not covered by the signature (ignored by the signer)"
             for p in serialization.get("ignore_paths", ())
             if p not in GIT_PATHS and p != inside and model.is_dir()
             and relative_inside(model / p, model) and (model / p).exists()]
    return Verification(
        "model", str(model), str(sig_path), verified=signed.trusted and not problems,
        trust=signed.trust, signer=signed.signer, signed_at=signed.signed_at,
        algorithm=str(serialization.get("hash_type")),
        files=sum(1 for _ in signed.manifest.resource_descriptors()), digest=digest,
        problems=tuple(problems), notes=tuple(notes),
    )


def _hash_like(model: Path, serialization: dict[str, Any], ignore: list[str],
               progress: Progress | None) -> ms_manifest.Manifest:
    """Hash the model the way it was signed: our fast path, or the library for the rest."""
    algorithm = serialization.get("hash_type")
    if (serialization.get("method") == "files" and algorithm in HASH_ALGORITHMS
            and not serialization.get("allow_symlinks")):
        return hash_model(model, algorithm, ignore, progress)
    from model_signing import hashing

    config = hashing.Config()  # type: ignore[no-untyped-call]
    algorithm = cast(Literal["sha256", "blake2", "blake3"], algorithm)
    try:
        if serialization.get("method") == "shards":
            # the statement goes through a protobuf Struct: 4096 comes back as 4096.0
            shard_size = float(serialization["shard_size"])
            if not shard_size.is_integer():
                raise ValueError(f"shard size {shard_size} is not a whole number")
            config.use_shard_serialization(hashing_algorithm=algorithm,
                                           shard_size=int(shard_size),
                                           allow_symlinks=bool(serialization["allow_symlinks"]))
        else:
            config.use_file_serialization(hashing_algorithm=algorithm,
                                          allow_symlinks=bool(serialization["allow_symlinks"]))
        return config.set_ignored_paths(paths=ignore).hash(model)
    except (ValueError, KeyError, TypeError) as exc:
        raise SecurenbError(at(model, f"cannot hash as signed ({serialization}): {exc}")) from None


def compare(expected: ms_manifest.Manifest, actual: ms_manifest.Manifest, model: Path) -> list[str]:
    """One message per file added, removed or changed since signing."""
    want = {r.identifier: r.digest for r in expected.resource_descriptors()}
    have = {r.identifier: r.digest for r in actual.resource_descriptors()}

    def shown(name: str) -> Path:
        return model if name == "." else model / name

    problems = [f"{shown(n)}: file removed (it was signed)" for n in sorted(want.keys() - have)]
    problems += [f"{shown(n)}: file added (it is not signed)" for n in sorted(have.keys() - want)]
    for name in sorted(want.keys() & have.keys()):
        if want[name] != have[name]:
            problems.append(
                f"{shown(name)}: content changed ({want[name].algorithm} signed "
                f"{want[name].digest_hex[:16]}, now {have[name].digest_hex[:16]})")
    return problems


# -- the signature -------------------------------------------------------------------------
def _check_signature(raw: bytes, sig_path: Path, trust: Trust) -> _Signed:
    try:
        material = json.loads(raw)["verificationMaterial"]
        if not isinstance(material, dict):
            raise TypeError("verificationMaterial is not an object")
    except (*_BUNDLE_ERRORS, UnicodeDecodeError) as exc:
        raise Rejected(f"{sig_path}: not a Sigstore bundle (edited or corrupt: {exc})",
                       "not checked: unreadable signature") from None
    if "publicKey" in material:
        return _with_key(material, raw, sig_path, trust)
    if "x509CertificateChain" in material:
        return _with_certificate(material, raw, sig_path, trust)
    if "certificate" in material:
        return _with_sigstore(material, raw, sig_path, trust)
    raise Rejected(f"{sig_path}: the bundle names no key and no certificate",
                   "not checked: no verification material")


class _Read:
    """The bytes already read, for the library's ``Signature.read(path)`` (which re-reads)."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw

    def read_text(self, encoding: str = "utf-8") -> str:
        return self.raw.decode(encoding)


def _read_pb(sig_path: Path, raw: bytes) -> sigstore_pb.Signature:
    try:
        return sigstore_pb.Signature.read(cast(Path, _Read(raw)))
    except Exception as exc:  # the library raises whatever its parser does
        raise Rejected(f"{sig_path}: malformed bundle ({type(exc).__name__}: {exc})",
                       "not checked: unreadable signature") from None


def _with_key(material: dict[str, Any], raw: bytes, sig_path: Path,
              trust: Trust) -> _Signed:
    hint = (material.get("publicKey") or {}).get("hint")
    if hint:
        found = trust.key_by_hint(str(hint))
        if found is None:
            raise Rejected(
                f"{sig_path}: signed by a key that is not trusted or known here (public key "
                f"hint {str(hint)[:16]}); add its public key to {trust.field}",
                "untrusted: unknown key", SignerInfo("key"))
        candidates = [found]
    else:
        candidates = trust.keys
    if not candidates:
        raise Rejected(f"{sig_path}: signed by a key, but {trust.source} trusts no key",
                       "untrusted: no trusted keys", SignerInfo("key"))
    signature = _read_pb(sig_path, raw)
    for candidate in candidates:
        if not isinstance(candidate.key.key, ec.EllipticCurvePublicKey):
            continue
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # the library prints on old bundles
                manifest = _KeyObjectVerifier(candidate.key.key).verify(signature)
        except _BUNDLE_ERRORS:
            continue
        return _trusted_key(manifest, candidate, trust)
    key = candidates[0].key.key_id[:16] if len(candidates) == 1 else "any trusted key"
    raise Rejected(f"{sig_path}: the signature does not verify with {key}: the bundle or its "
                   "payload was edited", "not trusted: invalid signature",
                   SignerInfo("key", key_id=candidates[0].key.key_id if hint else None))


def _trusted_key(manifest: ms_manifest.Manifest, candidate: CandidateKey, trust: Trust) -> _Signed:
    signer = SignerInfo("key", key_id=candidate.key.key_id)
    if candidate.trusted:
        return _Signed(manifest, signer, f"trusted: {candidate.trusted}", True)
    return _Signed(manifest, signer, f"untrusted: {trust.untrusted(candidate)}", False,
                   problems=[f"valid signature, but {trust.untrusted(candidate)}"])


def _with_certificate(material: dict[str, Any], raw: bytes, sig_path: Path,
                      trust: Trust) -> _Signed:
    try:
        chain = [x509.load_der_x509_certificate(base64.b64decode(c["rawBytes"]))
                 for c in material["x509CertificateChain"]["certificates"]]
        leaf = chain[0]
    except _BUNDLE_ERRORS as exc:
        raise Rejected(f"{sig_path}: unreadable certificate chain ({exc})",
                       "not checked: unreadable signature") from None
    subjects, issuer = certs.subject_names(leaf), certs.issuer_name(leaf)
    signer = SignerInfo("certificate", key_id=_key_id(leaf), identity=certs.describe(leaf),
                        issuer=issuer)
    who = f"certificate {signer.identity} (issuer {issuer})"
    authorities = trust.authorities
    if not authorities:
        raise Rejected(f"signed with {who}, but {trust.source} lists no trust.certificate_roots",
                       "untrusted: no certificate roots in the trust policy", signer)
    signature = _read_pb(sig_path, raw)
    errors = []
    for ca in authorities:
        try:
            manifest = sign_certificate.Verifier(list(ca.roots)).verify(signature)
        except crypto.X509StoreContextError as exc:
            errors.append(f"{ca.label}: {exc}")
            continue
        except _BUNDLE_ERRORS as exc:
            raise Rejected(f"{sig_path}: the signature does not verify with the key of {who}: "
                           f"the bundle or its payload was edited ({exc or type(exc).__name__})",
                           "not trusted: invalid signature", signer) from None
        roots = [c for path in ca.roots for c in certs.load_pem_certificates(path)]
        problems = certs.validity_problems([*chain, *roots])
        allowed = [i for i in ca.identities if i.matches(issuer, subjects)]
        if not allowed:
            problems.append(f"{who} is not an identity allowed by {ca.label} "
                            f"(allowed: {_listing(ca.identities)})")
        if problems:
            return _Signed(manifest, signer, f"untrusted: {problems[0]}", False,
                           problems=problems)
        why = (f"trusted: chains to {certs.describe(roots[0])} ({ca.label}) as "
               f"{allowed[0].describe()}")
        return _Signed(manifest, signer, why, True)
    raise Rejected(f"{who} does not chain to a root in trust.certificate_roots "
                   f"({'; '.join(errors)})", "untrusted: unknown certificate authority", signer)


def _key_id(cert: x509.Certificate) -> str | None:
    key = cert.public_key()
    return PublicKey(key).key_id if isinstance(key, ec.EllipticCurvePublicKey) else None


def _listing(identities: tuple[Identity, ...]) -> str:
    return ", ".join(i.describe() for i in identities)


class _IdentityPolicy:
    """A sigstore VerificationPolicy: the certificate must match one of our identities."""

    def __init__(self, identities: tuple[Identity, ...]) -> None:
        self.identities = identities
        self.allowed: Identity | None = None
        self.rejected: str | None = None

    def verify(self, cert: x509.Certificate) -> None:
        from sigstore.errors import VerificationError

        issuer, subjects = certs.oidc_issuer(cert), certs.subject_names(cert)
        self.allowed = next((i for i in self.identities if i.matches(issuer, subjects)), None)
        if self.allowed is None:
            self.rejected = (f"Sigstore identity {', '.join(subjects) or '?'} (issuer {issuer}) "
                             f"is not in trust.identities (allowed: "
                             f"{_listing(self.identities) or 'none'})")
            raise VerificationError(self.rejected)


def _with_sigstore(material: dict[str, Any], raw: bytes, sig_path: Path,
                   trust: Trust) -> _Signed:
    from model_signing._signing import sign_sigstore
    from sigstore.errors import Error as SigstoreError
    from sigstore.models import TrustedRoot
    from sigstore.verify import Verifier

    try:
        leaf = x509.load_der_x509_certificate(base64.b64decode(material["certificate"]["rawBytes"]))
    except _BUNDLE_ERRORS as exc:
        raise Rejected(f"{sig_path}: unreadable Sigstore certificate ({exc})",
                       "not checked: unreadable signature") from None
    names = certs.subject_names(leaf)
    signer = SignerInfo("sigstore", identity=names[0] if names else None,
                        issuer=certs.oidc_issuer(leaf))
    root_path, root_label = trust.sigstore_trusted_root()
    policy = _IdentityPolicy(trust.identities)

    class _Verifier(sign_sigstore.Verifier):
        """The library's Sigstore verifier with our trusted root and identity policy."""

        def __init__(self) -> None:
            self._verifier = Verifier(trusted_root=TrustedRoot.from_file(str(root_path)))
            self._policy = policy  # type: ignore[assignment]

    try:
        manifest = _Verifier().verify(sign_sigstore.Signature.read(cast(Path, _Read(raw))))
    except (SigstoreError, *_BUNDLE_ERRORS) as exc:
        if policy.rejected:
            raise Rejected(policy.rejected, "untrusted: identity not in the trust policy",
                           signer) from None
        raise Rejected(f"{sig_path}: Sigstore verification failed against {root_label}: {exc}",
                       "not trusted: invalid signature", signer) from None
    assert policy.allowed is not None
    when = _integrated_time(material)
    return _Signed(manifest, signer, f"trusted: Sigstore certificate verified against "
                   f"{root_label}, identity allowed as {policy.allowed.describe()}", True,
                   signed_at=when)


def _integrated_time(material: dict[str, Any]) -> str | None:
    """The Rekor entry's time (verified by sigstore as part of the bundle)."""
    for entry in material.get("tlogEntries") or ():
        seconds = entry.get("integratedTime")
        if seconds:
            moment = datetime.fromtimestamp(int(seconds), timezone.utc)
            return moment.isoformat().replace("+00:00", "Z") + " (Rekor)"
    return None
