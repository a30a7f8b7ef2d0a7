"""Attestations: in-toto statements, DSSE, SLSA provenance, predicate schemas."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
from google.protobuf import json_format
from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
from in_toto_attestation.v1 import statement_pb2
from in_toto_attestation.v1.statement import Statement
from sigstore.dsse import _pae as sigstore_pae

from securenb.core.attest import (
    GATE_PREDICATE,
    Dependency,
    RunProvenance,
    Subject,
    make_statement,
    pae,
    sign_envelope,
    validate_predicate,
    verify_envelope,
)
from securenb.core.keys import PrivateKey
from securenb.errors import AttestationError

DIGEST = hashlib.sha256(b"model").hexdigest()


def _in_toto_validate(statement: dict) -> None:
    proto = json_format.ParseDict(statement, statement_pb2.Statement())
    Statement.copy_from_pb(proto).validate()


def test_pae_matches_spec_and_sigstore() -> None:
    assert pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )
    payload = b'{"a": 1}'
    assert pae("application/vnd.in-toto+json", payload) == sigstore_pae(
        "application/vnd.in-toto+json", payload
    )


def test_statement_validates_with_in_toto_attestation() -> None:
    stmt = make_statement(
        [Subject("model.pt", DIGEST)],
        GATE_PREDICATE,
        {
            "verdict": "allow",
            "checks": [{"check": "signature", "status": "pass"}],
            "policyDigest": DIGEST,
        },
    )
    _in_toto_validate(stmt)
    with pytest.raises(AttestationError, match="at least one subject"):
        make_statement([], GATE_PREDICATE, {})


@pytest.mark.parametrize("algorithm", ["ecdsa-p256", "ecdsa-p384", "ed25519"])
def test_envelope_round_trip_and_tampering(algorithm: str) -> None:
    key = PrivateKey.generate(algorithm)  # type: ignore[arg-type]
    stmt = make_statement([Subject("m", DIGEST)], "https://example/v1", {"n": 1})
    env = sign_envelope(stmt, key)
    got, signer = verify_envelope(env, [key.public])
    assert got == stmt and signer.key_id == key.key_id
    # re-serialising the envelope does not matter: the signature covers PAE(payload)
    verify_envelope(json.loads(json.dumps(env, indent=4)), [key.public])

    tampered = dict(
        env,
        payload=base64.b64encode(
            base64.b64decode(env["payload"]).replace(b'"n":1', b'"n":2')
        ).decode(),
    )
    with pytest.raises(AttestationError, match="no signature verifies"):
        verify_envelope(tampered, [key.public])
    with pytest.raises(AttestationError, match="no signature verifies"):
        verify_envelope(env, [PrivateKey.generate().public])
    with pytest.raises(AttestationError, match="malformed DSSE envelope"):
        verify_envelope({"payload": "%%%"}, [key.public])
    with pytest.raises(AttestationError, match="carries no signature"):
        verify_envelope(dict(env, signatures=[]), [key.public])


def test_slsa_provenance_is_valid_v1_and_keeps_integers() -> None:
    prov = RunProvenance(
        build_type="notebook-run",
        run_id="run-1",
        started="2026-11-25T10:00:00Z",
        finished="2026-11-25T10:05:00Z",
        external_parameters={"notebook": "train.ipynb", "parameters": {"epochs": 3}},
        internal_parameters={"backend": "bwrap"},
        dependencies=[Dependency("file:data/train.csv.enc", DIGEST, "train")],
    )
    stmt = prov.statement([Subject("model.pt", DIGEST)])
    _in_toto_validate(stmt)
    json_format.ParseDict(stmt["predicate"], provenance_pb2.Provenance())  # strict field names
    assert stmt["predicate"]["buildDefinition"]["externalParameters"]["parameters"]["epochs"] == 3
    assert isinstance(
        stmt["predicate"]["buildDefinition"]["externalParameters"]["parameters"]["epochs"], int
    )


def test_predicate_schemas_name_the_bad_field() -> None:
    validate_predicate(GATE_PREDICATE, {"verdict": "deny", "checks": [], "policyDigest": DIGEST})
    with pytest.raises(AttestationError, match="gate predicate invalid at verdict"):
        validate_predicate(
            GATE_PREDICATE, {"verdict": "maybe", "checks": [], "policyDigest": DIGEST}
        )
    with pytest.raises(AttestationError, match="gate predicate invalid"):
        validate_predicate(GATE_PREDICATE, {"verdict": "allow"})
    validate_predicate("https://not-ours/v1", {"anything": True})


def test_dataset_schema_in_repo_matches_the_manifest_model() -> None:
    """The checked-in schema is generated from the model; regenerate it when the model changes."""
    from importlib import resources

    from securenb.data.manifest import Manifest

    checked_in = json.loads(
        resources.files("securenb.schemas").joinpath("dataset.v1.json").read_text()
    )
    generated = Manifest.model_json_schema(by_alias=True, mode="serialization")
    assert {k: v for k, v in checked_in.items() if not k.startswith("$s") and k != "$id"} == (
        generated
    )
