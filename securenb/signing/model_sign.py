"""Sign a model in the OpenSSF model-signing format, through the model-signing library.

The payload (in-toto statement, predicate ``https://model_signing/signature/v1.0``)
and the Sigstore bundle v0.3 around its DSSE envelope are built by the
library's own ``Payload`` and signer classes. We hand those signers key objects
instead of PEM file paths: our keys are encrypted at rest or live in a KMS, and
a decrypted key must never be written to disk for a library to read.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol, cast

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from model_signing import manifest as ms_manifest
from model_signing._signing import sign_certificate, sign_ec_key
from model_signing._signing import sign_sigstore_pb as sigstore_pb
from model_signing._signing import signing as ms_signing

from securenb.core.fsutil import atomic_write_bytes
from securenb.core.keys import PrivateKey
from securenb.errors import KeyError_, SecurenbError, at
from securenb.signing import certs
from securenb.signing.hashing import HashAlgorithm, Progress, hash_model
from securenb.signing.paths import default_signature_path, relative_inside
from securenb.signing.result import SignerInfo

SIGSTORE_TOKEN_ENV = "SIGSTORE_ID_TOKEN"  # noqa: S105 - a variable name


class ModelSigner(Protocol):
    """Turns a model-signing payload into a Sigstore bundle (JSON bytes)."""

    @property
    def info(self) -> SignerInfo: ...

    def sign(self, payload: ms_signing.Payload) -> bytes: ...


def _ec_key(key: PrivateKey) -> ec.EllipticCurvePrivateKey:
    if not isinstance(key.key, ec.EllipticCurvePrivateKey):
        raise KeyError_(f"key {key.key_id[:16]} is {key.algorithm}: model signatures need an "
                        "ECDSA P-256 or P-384 key (the model-signing format)")
    return key.key


class _KeyObjectSigner(sign_ec_key.Signer):
    """The library's elliptic-key signer, given a key object rather than a PEM path."""

    def __init__(self, key: ec.EllipticCurvePrivateKey) -> None:
        self._private_key = key
        sign_ec_key._check_supported_ec_key(key.public_key())


class _CertificateObjectSigner(sign_certificate.Signer):
    """The library's certificate signer, given objects rather than paths."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, certificate: x509.Certificate,
                 chain: list[x509.Certificate]) -> None:
        self._private_key = key
        self._signing_certificate = certificate
        self._trust_chain = chain


class KeySigner:
    """A private key (ECDSA P-256/P-384) from the key store, a file, env, keyring or KMS."""

    def __init__(self, key: PrivateKey) -> None:
        self._signer = _KeyObjectSigner(_ec_key(key))
        self.info = SignerInfo("key", key_id=key.key_id)

    def sign(self, payload: ms_signing.Payload) -> bytes:
        return _bundle_json(self._signer.sign(payload))


class CertificateSigner:
    """A private key with its certificate and the chain up to (not including) a root."""

    def __init__(self, key: PrivateKey, certificate: Path, chain: list[Path]) -> None:
        leaf = certs.load_pem_certificates(certificate)[0]
        if leaf.public_key() != _ec_key(key).public_key():
            raise KeyError_(at(certificate, f"certificate is not for key {key.key_id[:16]}"))
        problems = certs.validity_problems([leaf])
        if problems:
            raise SecurenbError(at(certificate, problems[0]))
        if not certs.may_sign_code(leaf):
            raise SecurenbError(at(certificate, "certificate allows neither digitalSignature "
                                                "nor codeSigning"))
        intermediates = [c for path in chain for c in certs.load_pem_certificates(path)]
        self._signer = _CertificateObjectSigner(_ec_key(key), leaf, intermediates)
        self.info = SignerInfo("certificate", key_id=key.key_id,
                               identity=certs.describe(leaf), issuer=certs.issuer_name(leaf))

    def sign(self, payload: ms_signing.Payload) -> bytes:
        return _bundle_json(self._signer.sign(payload))


def caller_token() -> str | None:
    """This process's OIDC identity token: ``$SIGSTORE_ID_TOKEN``, else ambient CI credentials."""
    from sigstore.oidc import detect_credential

    return os.environ.get(SIGSTORE_TOKEN_ENV) or detect_credential()


class SigstoreSigner:
    """Sigstore keyless: an OIDC identity token, a Fulcio certificate, a Rekor entry.

    Needs the network (TUF, Fulcio, Rekor of the public-good instance). The
    token is the caller's (``token``: the CLI sends its own to the agent), else
    ``$SIGSTORE_ID_TOKEN``, else ambient CI credentials; there is no interactive
    browser flow, which would hang a kernel or a server.
    """

    def __init__(self, token: str | None = None) -> None:
        self._token = token or caller_token()
        if not self._token:
            raise KeyError_(f"Sigstore signing needs an OIDC identity token: set "
                            f"{SIGSTORE_TOKEN_ENV} or run where ambient credentials exist "
                            "(e.g. GitHub Actions with id-token: write)")
        self.info = SignerInfo("sigstore")

    def sign(self, payload: ms_signing.Payload) -> bytes:
        from model_signing._signing import sign_sigstore
        from sigstore.errors import Error as SigstoreError

        try:
            signer = sign_sigstore.Signer(identity_token=self._token,
                                          use_ambient_credentials=False)
            bundle = signer.sign(payload).bundle
        except (SigstoreError, OSError, ValueError) as exc:
            raise SecurenbError(
                f"Sigstore keyless signing failed; it needs network access to the Sigstore "
                f"services (TUF, Fulcio, Rekor): {exc}") from None
        leaf = bundle.signing_certificate
        names = certs.subject_names(leaf)
        self.info = SignerInfo("sigstore", identity=names[0] if names else None,
                               issuer=certs.oidc_issuer(leaf))
        return bundle.to_json().encode()


def _bundle_json(signature: ms_signing.Signature) -> bytes:
    return cast(sigstore_pb.Signature, signature).bundle.to_json().encode()


def sign_model(
    model: Path,
    signer: ModelSigner,
    *,
    signature: Path | None = None,
    algorithm: HashAlgorithm = "sha256",
    ignore: tuple[str, ...] = (),
    progress: Progress | None = None,
) -> tuple[Path, ms_manifest.Manifest, bytes]:
    """Hash ``model``, sign the manifest, write the bundle atomically; return them.

    A signature inside a model folder is added to the ignored paths, so both
    our verifier and model-signing's accept it.
    """
    model = Path(model)
    sig_path = Path(signature) if signature else default_signature_path(model)
    inside = relative_inside(sig_path, model) if model.is_dir() else None
    manifest = hash_model(model, algorithm, (*ignore, *([inside] if inside else [])), progress)
    bundle = signer.sign(ms_signing.Payload(manifest))
    atomic_write_bytes(sig_path, bundle)
    return sig_path, manifest, bundle
