"""Sign and verify models, notebooks and blobs, and record it in the workspace.

The one entry point of the CLI, the kernel magics and the server extension, so
that all of them choose keys, bind names and record attestations the same way.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, cast, get_args

from securenb.core.attest import Subject
from securenb.core.keys import KeyStore, PrivateKey, PublicKey, resolve_public_key
from securenb.core.keys.purposes import Purpose
from securenb.core.store import file_sha256, now_rfc3339
from securenb.core.workspace import Workspace
from securenb.errors import AttestationError, SecurenbError, at
from securenb.signing import cosign
from securenb.signing.envelope_file import is_envelope_file, verify_envelope_file
from securenb.signing.hashing import HashAlgorithm, Progress, root_digest, sha256_of_signed
from securenb.signing.notebook import Scope, sign_notebook, verify_notebook
from securenb.signing.paths import default_signature_path, read_signature
from securenb.signing.record import SIGNATURE_PREDICATE, record_signature, record_verification
from securenb.signing.result import SignerInfo, SignResult, Verification, Via
from securenb.signing.trust import Trust, as_key_ref

if TYPE_CHECKING:
    from securenb.signing.model_sign import ModelSigner

# model_sign and model_verify are imported by the functions that use them, after the
# keys are unlocked: they import model_signing, sigstore and protobuf (~20 MB), and the
# key's KDF (scrypt, 64 MiB while it runs) should not stack on top of them (docs/signing.md,
# Memory).

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
    allow_secrets: bool = False
    # the caller's OIDC token for --sigstore, so that the agent signs as the caller, not
    # with a token of its own environment; never recorded, never in a repr
    sigstore_token: str | None = field(default=None, repr=False)

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
        for name in ("key", "certificate", "signature", "sigstore_token"):
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
        for name in ("sigstore", "allow_secrets"):
            if not isinstance(data.get(name, False), bool):
                raise SecurenbError(f"sign request: {name!r} must be true or false")
        return cls(**{**data, "chain": tuple(data.get("chain", ())),
                      "ignore": tuple(data.get("ignore", ()))})


def signing_key(ws: Workspace, ref: str | None, purpose: Purpose = "release") -> PrivateKey:
    """The key ``ref`` names, or the policy's key for ``purpose``; refused if made for another."""
    return ws.purpose_signer(purpose, ref)


def is_notebook(path: Path) -> bool:
    return path.suffix == ".ipynb" and path.is_file()


def sign(ws: Workspace, request: SignRequest, *, key: PrivateKey | None = None,
         progress: Progress | None = None, via: Via = "local",
         requester: dict[str, str] | None = None) -> SignResult:
    """Sign the model or notebook of ``request``; attest and audit it.

    ``key`` is an already unlocked key (the server keeps them); otherwise
    ``request.key`` or the policy's release key is unlocked here.
    The record key (it signs the attestation) is unlocked first: before the
    model is hashed or any signature written, and before the imports of
    model_signing.
    """
    path = Path(request.path)
    if is_notebook(path) and not request.allow_secrets:  # every front-end signs through here
        from securenb.secretscan import refuse_if_secrets

        refuse_if_secrets(path)
    ws.signer()
    if is_notebook(path):
        signed = sign_notebook(path, key or signing_key(ws, request.key), request.scope)
        digest, _ = file_sha256(path)
        result = SignResult("notebook", str(path), f"{path}#metadata.securenb.signature",
                            signed.signer, digest, f"sha256, scope {signed.scope}", 1,
                            signed.signed_at, via)
        subjects = [Subject(ws.relpath(path), digest)]
        ws.record_artifact(path, digest=digest)  # `securenb show` knows what was signed
        return _recorded(ws, result, subjects, digest, requester)
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
    for d in descriptors:  # each file by SHA-256, as the workspace and the sidebar know it
        file = path if d.identifier == "." else path / d.identifier
        digest = d.digest.digest_hex if request.algorithm == "sha256" else \
            sha256_of_signed(file, request.algorithm, d.digest.digest_hex)
        subjects.append(Subject(ws.relpath(file), digest))
        ws.record_artifact(file, digest=digest)  # `securenb show` knows what was signed
    ws.record_artifact(sig_path, media_type="application/vnd.dev.sigstore.bundle.v0.3+json",
                       digest=sig_digest)
    return _recorded(ws, result, subjects, sig_digest, requester)


def _model_signer(ws: Workspace, request: SignRequest, key: PrivateKey | None) -> ModelSigner:
    if request.sigstore:
        from securenb.signing.model_sign import SigstoreSigner

        return SigstoreSigner(request.sigstore_token)
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
    """A cosign ``sign-blob --key`` signature of ``path`` by a blob key; attested and audited."""
    ws.signer()
    private = key or signing_key(ws, key_ref, "blob")
    sig_path, digest = cosign.sign_blob(path, private, output)
    sig_digest, _ = file_sha256(sig_path)
    result = SignResult("blob", str(path), str(sig_path), SignerInfo("key", key_id=private.key_id),
                        digest,
                        "sha256" if private.algorithm == "ecdsa-p256" else "sha384", 1,
                        now_rfc3339())
    subjects = [Subject(ws.relpath(path), digest), Subject(ws.relpath(sig_path), sig_digest)]
    return _recorded(ws, result, subjects, sig_digest, None)


def verify(ws: Workspace, path: Path, *, signature: Path | None = None,
           keys: Sequence[str | PublicKey] = (), progress: Progress | None = None,
           allow_failed: bool = False) -> Verification:
    """Verify a notebook, a model or a cosign-signed blob; attest and audit the outcome.

    The kind is the notebook's suffix, else the signature's content (a JSON
    Sigstore bundle for a model, base64 for cosign). ``keys`` (``--key``) pin
    the signer: a signature by any other key fails, naming both; they are key
    references, or public keys a client sent to the signer (which never opens
    a file or a variable a kernel names). A DSSE
    attestation file (a run's provenance) is checked with the record keys and
    not recorded again. The record key (it signs the verification's
    attestation) is unlocked before the imports of the model verifier. A run
    output verifies only if the run completed, unless ``allow_failed``.
    """
    path = Path(path)
    given = given_keys(keys, ws.keystore)
    pins = [k for k, _ in given]
    if _is_attestation(path, signature):
        return pin(verify_envelope_file(path, record_keys(ws)), pins)
    unrecorded = _cannot_record(ws)
    if unrecorded is None:
        ws.signer()
    result, sig_path, sig_digest = _check(
        path, signature, lambda p: Trust.for_workspace(ws, given, p), progress)
    result = pin(result, pins)
    if is_notebook(path):
        result = _with_run_checks(result, path, ws, [k for k, _ in record_keys(ws)],
                                  allow_failed)
    if unrecorded is not None:
        return dataclasses.replace(result, notes=(*result.notes, unrecorded))
    if sig_path is None:
        digest, _ = file_sha256(path)
        return _attested(ws, result, [Subject(ws.relpath(path), digest)])
    result = _with_workspace_record(ws, result, sig_digest)
    subjects = [Subject(ws.relpath(sig_path), sig_digest)]
    if result.digest:
        subjects.insert(0, Subject(ws.relpath(path), result.digest))
    return _attested(ws, result, subjects)


def verify_files(path: Path, *, signature: Path | None = None, keys: Sequence[str] = (),
                 policy: Path | None = None, progress: Progress | None = None,
                 allow_failed: bool = False) -> Verification:
    """A recipient's verification: the files, a public key or a trust policy file; nothing else.

    No workspace, no passphrase, nothing recorded, no network. ``keys`` are
    trusted (the recipient chose them) and pin the signer; with ``policy``,
    its ``[trust]`` decides and ``keys`` only pin.
    """
    path = Path(path)
    if not keys and policy is None:
        raise SecurenbError("nothing to verify against: give the signer's public key "
                            "(--key FILE) or a trust policy file (--policy FILE)")
    pins = pinned_keys(keys, None)
    if _is_attestation(path, signature):
        trusted = [(k, f"pinned by --key {r}") for k, r in zip(pins, keys, strict=True)]
        if policy is not None:
            trusted += Trust.from_policy_file(policy, (), "release").record_keys()
        return pin(verify_envelope_file(path, trusted), pins)
    result, _, _ = _check(path, signature, lambda p: Trust.for_files(keys, policy, p), progress)
    result = pin(result, pins)
    if is_notebook(path):
        provenance_keys = list(pins)
        if policy is not None:
            provenance_keys += [k for k, _ in
                                Trust.from_policy_file(policy, (), "release").record_keys()]
        result = _with_run_checks(result, path, None, provenance_keys, allow_failed)
    return result


def _with_run_checks(result: Verification, path: Path, ws: Workspace | None,
                     record: list[PublicKey], allow_failed: bool) -> Verification:
    """A run output (``securenb run``) also answers for its embedded provenance and audit."""
    from securenb.runs.verify import with_run_checks

    return with_run_checks(result, path, ws, record, allow_failed=allow_failed)


def _cannot_record(ws: Workspace) -> str | None:
    """Why this verification cannot be attested (no passphrase, no terminal), or None.

    Verifying needs no private key; recording it does. Without a way to unlock
    the record key the verdict is still given, and says it was not recorded.
    """
    import sys

    env = ws.policy.signing.passphrase_env
    if ws._signer is not None or os.environ.get(env) is not None \
            or (sys.stdin is not None and sys.stdin.isatty()):
        return None
    return f"not recorded in the workspace: ${env} is not set (verifying needs no passphrase)"


def _is_attestation(path: Path, signature: Path | None) -> bool:
    return signature is None and not default_signature_path(path).exists() \
        and is_envelope_file(path)


def _check(path: Path, signature: Path | None, trust: Callable[[Purpose], Trust],
           progress: Progress | None) -> tuple[Verification, Path | None, str]:
    """Check the signature of ``path``: (result, signature file, its SHA-256).

    The signature file is read once; the kind, the check and the digest
    recorded all come from those bytes. A notebook carries its own (None, "").
    """
    if is_notebook(path):
        return verify_notebook(path, trust("release")), None, ""
    sig_path = Path(signature) if signature else default_signature_path(path)
    if not sig_path.exists() and not sig_path.is_symlink():
        raise SecurenbError(at(sig_path, "cannot read the signature (there is none); sign "
                                         "first with `securenb sign`"))
    raw = read_signature(sig_path)
    sig_digest = hashlib.sha256(raw).hexdigest()
    if raw.lstrip().startswith(b"{"):
        from securenb.signing.model_verify import verify_model

        result = verify_model(path, trust("release"), signature=sig_path, progress=progress,
                              raw=raw)
        return result, sig_path, sig_digest
    return cosign.verify_blob(path, trust("blob"), sig_path, raw), sig_path, sig_digest


def pinned_keys(refs: Sequence[str], keystore: KeyStore | None) -> list[PublicKey]:
    """The public keys ``--key`` names (files or key references)."""
    return [key for key, _ in given_keys(refs, keystore)]


def given_keys(keys: Sequence[str | PublicKey], keystore: KeyStore | None
               ) -> list[tuple[PublicKey, str]]:
    """Each ``--key`` as (public key, where it came from): a reference is resolved here."""
    return [(key, f"--key {key.key_id[:16]}") if isinstance(key, PublicKey)
            else (resolve_public_key(as_key_ref(key), keystore), f"--key {key}") for key in keys]


def pin(result: Verification, pins: Sequence[PublicKey]) -> Verification:
    """Fail ``result`` unless one of ``pins`` (if any) made the signature, naming both keys."""
    if not pins:
        return result
    signer = result.signer.key_id if result.signer else None
    if signer in {k.key_id for k in pins}:
        return result
    who = result.signer.describe() if result.signer else "an unknown signer"
    wanted = ", ".join(k.key_id[:16] for k in pins)
    problem = f"signed by {who}, but --key pins key {wanted}"
    return dataclasses.replace(result, verified=False, problems=(problem, *result.problems))


def record_keys(ws: Workspace) -> list[tuple[PublicKey, str]]:
    """The keys whose records ``ws`` trusts: pinned (Workspace.record_trust)."""
    return ws.record_trust()


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
    signed_digests = {s.get("digest", {}).get("sha256") for s in statement.get("subject", [])}
    if statement.get("predicateType") != SIGNATURE_PREDICATE or sig_digest not in signed_digests:
        return dataclasses.replace(result, notes=(
            *result.notes, "workspace record: the index was edited (its attestation is not a "
            "signature record of this signature file); ignored"))
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
