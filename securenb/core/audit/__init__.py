"""The audit log: an RFC 9162 Merkle tree of audit entries with signed checkpoints.

``AuditLog`` appends (durably, group-committed, across processes) and reads;
``verify_log`` checks a log offline from its files and public key;
``merkle`` and ``note`` hold the RFC 9162 proofs and the signed-note format.
"""

from securenb.core.audit.entry import AuditEntry
from securenb.core.audit.log import AppendReceipt, AuditLog, AuditRecord
from securenb.core.audit.merkle import (
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root_hash,
    verify_consistency,
    verify_inclusion,
)
from securenb.core.audit.note import (
    Checkpoint,
    SignedCheckpoint,
    SignedNote,
    open_checkpoint,
    parse_note,
    sign_checkpoint,
)
from securenb.core.audit.proof import InclusionProof, verify_inclusion_proof
from securenb.core.audit.verify import AuditReport, AuditVerificationError, verify_log

__all__ = [
    "AppendReceipt",
    "AuditEntry",
    "AuditLog",
    "AuditRecord",
    "AuditReport",
    "AuditVerificationError",
    "Checkpoint",
    "InclusionProof",
    "SignedCheckpoint",
    "SignedNote",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "open_checkpoint",
    "parse_note",
    "root_hash",
    "sign_checkpoint",
    "verify_consistency",
    "verify_inclusion",
    "verify_inclusion_proof",
    "verify_log",
]
