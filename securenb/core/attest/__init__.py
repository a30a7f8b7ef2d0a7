"""Attestations: in-toto Statement v1 in DSSE envelopes, SLSA provenance, our schemas."""

from securenb.core.attest.dsse import IN_TOTO_PAYLOAD_TYPE, pae, sign_envelope, verify_envelope
from securenb.core.attest.schemas import validate_predicate
from securenb.core.attest.slsa import Dependency, RunProvenance
from securenb.core.attest.statement import (
    DATASET_PREDICATE,
    DEPLOYMENT_PREDICATE,
    FAIRNESS_PREDICATE,
    GATE_PREDICATE,
    SCAN_PREDICATE,
    SLSA_PROVENANCE_PREDICATE,
    STATEMENT_TYPE,
    Subject,
    make_statement,
    subjects_of,
)

__all__ = [
    "DATASET_PREDICATE",
    "DEPLOYMENT_PREDICATE",
    "FAIRNESS_PREDICATE",
    "GATE_PREDICATE",
    "IN_TOTO_PAYLOAD_TYPE",
    "SCAN_PREDICATE",
    "SLSA_PROVENANCE_PREDICATE",
    "STATEMENT_TYPE",
    "Dependency",
    "RunProvenance",
    "Subject",
    "make_statement",
    "pae",
    "sign_envelope",
    "subjects_of",
    "validate_predicate",
    "verify_envelope",
]
