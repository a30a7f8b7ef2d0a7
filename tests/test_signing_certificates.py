"""Certificate and Sigstore signers: chains, expiry, identity policy (the library's gaps)."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import model_signing
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from securenb.core.workspace import Workspace
from securenb.errors import SecurenbError
from securenb.signing import SignRequest, sign, verify

VECTORS = Path(__file__).parent / "vectors" / "model-transparency-v1.1.0"
EMAIL = "ml-release@example.com"
NOW = datetime.now(timezone.utc)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


Issuer = tuple[x509.Name, ec.EllipticCurvePrivateKey]


def _cert(cn: str, key: ec.EllipticCurvePrivateKey, issuer: Issuer | None, *, ca: bool,
          expired: bool = False) -> x509.Certificate:
    issuer_name, issuer_key = issuer or (_name(cn), key)
    end = NOW - timedelta(days=1) if expired else NOW + timedelta(days=30)
    builder = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(issuer_name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(NOW - timedelta(days=10)).not_valid_after(end)
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        builder = builder.add_extension(x509.KeyUsage(
            False, False, False, False, False, True, True, False, False), critical=True)
    else:
        builder = (builder
                   .add_extension(x509.KeyUsage(True, False, False, False, False, False, False,
                                                False, False), critical=True)
                   .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]),
                                  critical=False)
                   .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(EMAIL)]),
                                  critical=False))
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(path: Path, obj: x509.Certificate | ec.EllipticCurvePrivateKey) -> Path:
    if isinstance(obj, x509.Certificate):
        path.write_bytes(obj.public_bytes(serialization.Encoding.PEM))
    else:
        path.write_bytes(obj.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return path


@pytest.fixture
def pki(workspace: Workspace) -> dict[str, Path]:
    """root -> intermediate -> leaf (SAN ml-release@example.com), and an expired leaf."""
    d = workspace.root / "pki"
    d.mkdir()
    root_key, int_key, leaf_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    root = _cert("Test Root", root_key, None, ca=True)
    inter = _cert("Test Intermediate", int_key, (root.subject, root_key), ca=True)
    other_key = ec.generate_private_key(ec.SECP256R1())
    return {
        "root": _pem(d / "root.pem", root),
        "int": _pem(d / "int.pem", inter),
        "leaf": _pem(d / "leaf.pem", _cert("ML release", leaf_key, (inter.subject, int_key),
                                           ca=False)),
        "expired": _pem(d / "expired.pem", _cert("ML release", leaf_key,
                                                 (inter.subject, int_key), ca=False,
                                                 expired=True)),
        "key": _pem(d / "leaf.key", leaf_key),
        "other_root": _pem(d / "other.pem", _cert("Other Root", other_key, None, ca=True)),
    }


@pytest.fixture
def model(workspace: Workspace) -> Path:
    folder = workspace.root / "model"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(b"\x01" * 4096)
    return folder


def policy(ws: Workspace, root: str, subject: str = f'subject = "{EMAIL}"') -> Workspace:
    (ws.root / "securenb.toml").write_text(f"""
[[trust.certificate_roots]]
roots = ["{root}"]
identities = [{{ {subject}, issuer = "CN=Test Intermediate" }}]
""")
    return Workspace(ws.root)


def _sign_with_certificate(ws: Workspace, model: Path, pki: dict[str, Path]) -> None:
    sign(ws, SignRequest(str(model), key=f"file:{pki['key']}", certificate=str(pki["leaf"]),
                         chain=(str(pki["int"]),)))


def test_certificate_signature_verifies(workspace: Workspace, model: Path,
                                        pki: dict[str, Path]) -> None:
    _sign_with_certificate(workspace, model, pki)
    result = verify(policy(workspace, "pki/root.pem"), model)
    assert result.verified, result.lines()
    assert result.signer is not None and result.signer.method == "certificate"
    assert result.signer.identity == "CN=ML release"
    assert result.trust == (f"trusted: chains to CN=Test Root (trust.certificate_roots[0]) as "
                            f"{EMAIL} (issuer CN=Test Intermediate)")
    # and model-signing's own certificate verifier accepts our bundle
    model_signing.verifying.Config().use_certificate_verifier(
        certificate_chain=[pki["root"]]).verify(model, model.parent / "model.sig")


def test_identity_by_regular_expression(workspace: Workspace, model: Path,
                                        pki: dict[str, Path]) -> None:
    _sign_with_certificate(workspace, model, pki)
    ws = policy(workspace, "pki/root.pem", r'subject_regex = ".*@example\\.com"')
    assert verify(ws, model).verified


def test_identity_not_allowed(workspace: Workspace, model: Path, pki: dict[str, Path]) -> None:
    _sign_with_certificate(workspace, model, pki)
    result = verify(policy(workspace, "pki/root.pem", 'subject = "ops@example.com"'), model)
    assert not result.verified
    assert result.problems == (
        "certificate CN=ML release (issuer CN=Test Intermediate) is not an identity allowed by "
        "trust.certificate_roots[0] (allowed: ops@example.com (issuer CN=Test Intermediate))",)


def test_untrusted_root(workspace: Workspace, model: Path, pki: dict[str, Path]) -> None:
    _sign_with_certificate(workspace, model, pki)
    result = verify(policy(workspace, "pki/other.pem"), model)
    assert not result.verified and result.trust == "untrusted: unknown certificate authority"
    assert result.problems[0].startswith("certificate CN=ML release (issuer CN=Test "
                                         "Intermediate) does not chain to a root in "
                                         "trust.certificate_roots")
    (workspace.root / "securenb.toml").unlink()
    no_roots = verify(Workspace(workspace.root), model)
    assert "lists no trust.certificate_roots" in no_roots.problems[0]


def test_expired_certificate(workspace: Workspace, model: Path, pki: dict[str, Path]) -> None:
    with pytest.raises(SecurenbError, match=r"expired\.pem: certificate CN=ML release expired on"):
        sign(workspace, SignRequest(str(model), key=f"file:{pki['key']}",
                                    certificate=str(pki["expired"]), chain=(str(pki["int"]),)))
    # the library signs with it, and its verifier accepts it: ours does not
    sig = model.parent / "model.sig"
    model_signing.signing.Config().use_certificate_signer(
        private_key=pki["key"], signing_certificate=pki["expired"],
        certificate_chain=[pki["int"]]).sign(model, sig)
    model_signing.verifying.Config().use_certificate_verifier(
        certificate_chain=[pki["root"]]).verify(model, sig)
    result = verify(policy(workspace, "pki/root.pem"), model)
    assert not result.verified
    assert result.problems[0].startswith("certificate CN=ML release expired on")
    assert result.trust.startswith("untrusted: certificate CN=ML release expired on")


# -- Sigstore (offline, pinned trusted root) -------------------------------------------------
def _sigstore_policy(ws: Workspace, identity: str) -> Workspace:
    (ws.root / "securenb.toml").write_text(
        f'[trust]\nidentities = [{{ issuer = "https://sigstore.verify.ibm.com/oauth2", '
        f"{identity} }}]\n")
    return Workspace(ws.root)


def test_sigstore_identity_regex(workspace: Workspace) -> None:
    folder = VECTORS / "v1.1.0-sigstore"
    ws = _sigstore_policy(workspace, r'subject_regex = ".*@us\\.ibm\\.com"')
    assert verify(ws, folder, signature=folder / "model.sig").verified


def test_sigstore_identity_not_trusted(workspace: Workspace) -> None:
    folder = VECTORS / "v1.1.0-sigstore"
    ws = _sigstore_policy(workspace, 'subject = "someone@example.com"')
    result = verify(ws, folder, signature=folder / "model.sig")
    assert not result.verified and result.trust == "untrusted: identity not in the trust policy"
    assert result.problems == (
        "Sigstore identity stefanb@us.ibm.com (issuer https://sigstore.verify.ibm.com/oauth2) "
        "is not in trust.identities (allowed: someone@example.com (issuer "
        "https://sigstore.verify.ibm.com/oauth2))",)


def test_sigstore_edited_payload(workspace: Workspace, tmp_path: Path) -> None:
    folder = tmp_path / "v1.1.0-sigstore"
    folder.mkdir()
    for name in ("signme-1", "signme-2"):
        (folder / name).write_bytes((VECTORS / "v1.1.0-sigstore" / name).read_bytes())
    bundle = json.loads((VECTORS / "v1.1.0-sigstore" / "model.sig").read_text())
    statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    statement["predicate"]["resources"][0]["digest"] = "0" * 64
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    (folder / "model.sig").write_text(json.dumps(bundle))
    ws = _sigstore_policy(workspace, 'subject = "stefanb@us.ibm.com"')
    result = verify(ws, folder, signature=folder / "model.sig")
    assert not result.verified and result.trust == "not trusted: invalid signature"
    assert "Sigstore verification failed against the production trusted root" in result.problems[0]


def test_keyless_signing_needs_the_network(workspace: Workspace, model: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SIGSTORE_ID_TOKEN", raising=False)
    monkeypatch.setattr("sigstore.oidc.detect_credential", lambda: None)  # not in CI here
    with pytest.raises(SecurenbError, match="needs an OIDC identity token: set SIGSTORE_ID_TOKEN"):
        sign(workspace, SignRequest(str(model), sigstore=True))
    monkeypatch.setenv("SIGSTORE_ID_TOKEN", "a.b.c")
    with pytest.raises(SecurenbError, match="needs network access to the Sigstore services"):
        sign(workspace, SignRequest(str(model), sigstore=True))
    assert not (model.parent / "model.sig").exists()
