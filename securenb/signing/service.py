"""Sign and verify models, notebooks and blobs, and record it in the workspace.

The one entry point of the CLI, the kernel magics and the server extension, so
that all of them choose keys, bind names and record attestations the same way.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Literal, cast, get_args

from securenb.core.attest import Subject
from securenb.core.keys import PrivateKey, resolve_signing_key
from securenb.core.store import file_sha256, now_rfc3339
from securenb.core.workspace import Workspace
from securenb.errors import AttestationError, SecurenbError, at
from securenb.signing import cosign
from securenb.signing.hashing import HashAlgorithm, Progress, root_digest
from securenb.signing.notebook import Scope, sign_notebook, verify_notebook
from securenb.signing.paths import default_signature_path
from securenb.signing.record import SIGNATURE_PREDICATE, record_signature, record_verification
from securenb.signing.result import SignerInfo, SignResult, Verification
from securenb.signing.trust import Trust

if TYPE_CHECKING:
    from securenb.signing.model_sign import ModelSigner

# model_sign and model_verify are imported by the functions that use them, after the
# keys are unlocked: they import model_signing, sigstore and protobuf (~20 MB), and the
# key's KDF (scrypt, 64 MiB while it runs) should not stack on top of them (docs/signing.md,
# Memory).

Via = Literal["local", "server"]


@dataclass(frozen=True)
class SignRequest:
    """What to sign and how; JSON-safe, so a kernel can send it to the server."""

    path: str
    key: str | None = None
    certificate: str | None = None
    chain: tuple[str, ...] = ()
    sigstore: bool = False
    algorithm: HashAlgorithm = "sha256"
    signature: str | None = None
    scope: Scope = "source"
    ignore: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> SignRequest:
        """Parse a request from an untrusted client; errors name the field."""
        if not isinstance(data, dict) or not isinstance(data.get("path"), str):
            raise SecurenbError("sign request: 'path' (a string) is required")
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise SecurenbError(f"sign request: unknown field(s) {sorted(unknown)}")
        for name in ("key", "certificate", "signature"):
            if data.get(name) is not None and not isinstance(data[name], str):
                raise SecurenbError(f"sign request: {name!r} must be a string")
        for name in ("chain", "ignore"):
            value = data.get(name, ())
            if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
                raise SecurenbError(f"sign request: {name!r} must be a list of strings")
        if data.get("algorithm", "sha256") not in get_args(HashAlgorithm):
            raise SecurenbError(f"sign request: unknown algorithm {data['algorithm']!r}")
        if data.get("scope", "source") not in get_args(Scope):
            raise SecurenbError(f"sign request: unknown scope {data['scope']!r}")
        if not isinstance(data.get("sigstore", False), bool):
            raise SecurenbError("sign request: 'sigstore' must be true or false")
        return cls(**{**data, "chain": tuple(data.get("chain", ())),
                      "ignore": tuple(data.get("ignore", ()))})


def signing_key(ws: Workspace, ref: str | None) -> PrivateKey:
    """The key ``ref`` names, or the policy's signing key (``[signing] key``)."""
    if ref is None or ref == ws.policy.signing.key:
        return ws.signer()
    return resolve_signing_key(ref, ws.keystore, ws.policy.signing.passphrase_env)


def is_notebook(path: Path) -> bool:
    return path.suffix == ".ipynb" and path.is_file()


def sign(ws: Workspace, request: SignRequest, *, key: PrivateKey | None = None,
         progress: Progress | None = None, via: Via = "local",
         requester: dict[str, str] | None = None) -> SignResult:
    """Sign the model or notebook of ``request``; attest and audit it.

    ``key`` is an already unlocked key (the server keeps them); otherwise
    ``request.key`` or the policy's key is unlocked here.
    For a model, the workspace key (it signs the attestation) is unlocked first:
    before the model is hashed or its signature written, and before the imports of
    model_signing.
    """
    path = Path(request.path)
    if is_notebook(path):
        signed = sign_notebook(path, key or signing_key(ws, request.key), request.scope)
        digest, _ = file_sha256(path)
        result = SignResult("notebook", str(path), f"{path}#metadata.securenb.signature",
                            signed.signer, digest, f"sha256, scope {signed.scope}", 1,
                            signed.signed_at, via)
        subjects = [Subject(ws.relpath(path), digest)]
        return _recorded(ws, result, subjects, digest, requester)
    ws.signer()
    signer = _model_signer(ws, request, key)
    from securenb.signing.model_sign import sign_model

    sig_path, manifest, bundle = sign_model(
        path, signer, signature=Path(request.signature) if request.signature else None,
        algorithm=request.algorithm, ignore=request.ignore, progress=progress)
    root = root_digest(manifest)
    sig_digest = hashlib.sha256(bundle).hexdigest()
    descriptors = list(manifest.resource_descriptors())
    result = SignResult("model", str(path), str(sig_path), signer.info, root, request.algorithm,
                        len(descriptors), now_rfc3339(), via)
    subjects = [Subject(ws.relpath(path), root), Subject(ws.relpath(sig_path), sig_digest)]
    if request.algorithm == "sha256":
        subjects += [Subject(ws.relpath(path if d.identifier == "." else path / d.identifier),
                             d.digest.digest_hex) for d in descriptors]
    return _recorded(ws, result, subjects, sig_digest, requester)


def _model_signer(ws: Workspace, request: SignRequest, key: PrivateKey | None) -> ModelSigner:
    if request.sigstore:
        from securenb.signing.model_sign import SigstoreSigner

        return SigstoreSigner()
    private = key or signing_key(ws, request.key)
    from securenb.signing.model_sign import CertificateSigner, KeySigner

    if request.certificate:
        return CertificateSigner(private, Path(request.certificate),
                                 [Path(c) for c in request.chain])
    return KeySigner(private)


def _recorded(ws: Workspace, result: SignResult, subjects: list[Subject], sig_digest: str,
              requester: dict[str, str] | None) -> SignResult:
    envelope = record_signature(ws, result, subjects, sig_digest, requester)
    return dataclasses.replace(result, attestation=envelope)


def sign_blob(ws: Workspace, path: Path, *, key_ref: str | None = None,
              key: PrivateKey | None = None, output: Path | None = None) -> SignResult:
    """A cosign ``sign-blob --key`` signature of ``path``; attested and audited."""
    private = key or signing_key(ws, key_ref)
    sig_path, digest = cosign.sign_blob(path, private, output)
    sig_digest, _ = file_sha256(sig_path)
    result = SignResult("blob", str(path), str(sig_path), SignerInfo("key", key_id=private.key_id),
                        digest,
                        "sha256" if private.algorithm == "ecdsa-p256" else "sha384", 1,
                        now_rfc3339())
    subjects = [Subject(ws.relpath(path), digest), Subject(ws.relpath(sig_path), sig_digest)]
    return _recorded(ws, result, subjects, sig_digest, None)


def verify(ws: Workspace, path: Path, *, signature: Path | None = None,
           keys: Sequence[str] = (), progress: Progress | None = None) -> Verification:
    """Verify a notebook, a model or a cosign-signed blob; attest and audit the outcome.

    The kind is the notebook's suffix, else the signature's content (a JSON
    Sigstore bundle for a model, base64 for cosign).
    For a model, the workspace key (it signs the verification's attestation) is
    unlocked before the imports of the model verifier.
    """
    path = Path(path)
    trust = Trust.for_workspace(ws, keys)
    if is_notebook(path):
        result = verify_notebook(path, trust)
        from securenb.runs.verify import with_run_checks  # a run output: provenance, audit

        result = with_run_checks(result, path, ws, trust)
        digest, _ = file_sha256(path)
        return _attested(ws, result, [Subject(ws.relpath(path), digest)])
    sig_path = Path(signature) if signature else default_signature_path(path)
    try:
        head = sig_path.read_bytes()[:64].lstrip()
    except OSError as exc:
        raise SecurenbError(at(sig_path, f"cannot read the signature ({exc.strerror}); "
                                         "sign first with `securenb sign`")) from None
    if head.startswith(b"{"):
        ws.signer()
        from securenb.signing.model_verify import verify_model

        result = verify_model(path, trust, signature=sig_path, progress=progress)
    else:
        result = cosign.verify_blob(path, trust, sig_path)
    sig_digest, _ = file_sha256(sig_path)
    result = _with_workspace_record(ws, result, sig_digest)
    subjects = [Subject(ws.relpath(sig_path), sig_digest)]
    if result.digest:
        subjects.insert(0, Subject(ws.relpath(path), result.digest))
    return _attested(ws, result, subjects)


def _attested(ws: Workspace, result: Verification, subjects: list[Subject]) -> Verification:
    return dataclasses.replace(result, attestation=record_verification(ws, result, subjects))


def _with_workspace_record(ws: Workspace, result: Verification, sig_digest: str) -> Verification:
    """Bind the signature to the artifact name this workspace recorded when it signed."""
    records = ws.store.attestations_for(sig_digest, SIGNATURE_PREDICATE)
    if not records:
        return result
    first = records[-1]
    try:
        _, statement = ws.load_attestation(first.envelope)
    except (AttestationError, SecurenbError) as exc:
        return dataclasses.replace(result, notes=(*result.notes, f"workspace record: {exc}"))
    recorded = cast(str, statement["subject"][0]["name"])
    now = ws.relpath(Path(result.path))
    problems, notes = list(result.problems), list(result.notes)
    renamed = PurePosixPath(recorded).name != PurePosixPath(now).name
    if renamed and result.kind == "blob":  # a cosign signature names nothing: the record does
        problems.append(f"renamed: this workspace recorded the signature for {recorded!r}, "
                        f"it is now {now!r}")
    elif recorded != now:
        notes.append(f"this workspace recorded the signature for {recorded!r}")
    return dataclasses.replace(
        result, problems=tuple(problems), notes=tuple(notes),
        verified=result.verified and not problems,
        signed_at=result.signed_at or f"{first.created} (recorded in this workspace)")
