"""Verify a DSSE attestation file (a run's provenance, any record) with record keys.

What a recipient gets when a producer ships a run: the envelope as stored in
``.securenb/blobs/`` (``securenb show RUN`` names it) and the record key's
public half (``securenb keys export-public workspace``). The signature is
checked first; then every subject that names a file present beside the
envelope is hashed and compared, so a changed output is reported by name.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from securenb.core.attest import verify_envelope
from securenb.core.keys import PublicKey
from securenb.core.store import file_sha256
from securenb.errors import AttestationError
from securenb.signing.result import SignerInfo, Verification

_ENVELOPE_KEYS = {"payloadType", "payload", "signatures"}


def is_envelope_file(path: Path) -> bool:
    """A JSON file holding exactly a DSSE envelope (never a model's config.json)."""
    if not path.is_file() or path.suffix not in (".json", ".jsonl", ".dsse") \
            or path.stat().st_size > 64 << 20:
        return False
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(data, dict) and set(data) == _ENVELOPE_KEYS


def verify_envelope_file(path: Path, keys: Sequence[tuple[PublicKey, str]]) -> Verification:
    """Check ``path`` against ``keys`` (key, why trusted) and its subjects against the files."""
    path = Path(path)
    trusted = {key.key_id: why for key, why in keys}

    def failed(problem: str, trust: str, signer: SignerInfo | None = None) -> Verification:
        return Verification("attestation", str(path), str(path), verified=False, trust=trust,
                            signer=signer, problems=(problem,))

    try:
        envelope: Any = json.loads(path.read_bytes())
        statement, signer_key = verify_envelope(envelope, [k for k, _ in keys], source=str(path))
    except (OSError, ValueError, RecursionError) as exc:
        return failed(f"{path}: unreadable envelope ({exc})", "not checked: unreadable")
    except AttestationError as exc:
        ids = ", ".join(k.key_id[:16] for k, _ in keys) or "none"
        return failed(f"{exc} (trusted record keys: {ids})", "not trusted: invalid signature")
    signer = SignerInfo("key", key_id=signer_key.key_id)
    problems, notes = [], []
    for subject in statement.get("subject", []):
        name, digest = subject.get("name", ""), subject.get("digest", {}).get("sha256")
        candidate = path.parent / name
        if ":" in name or not name or not candidate.is_file():
            notes.append(f"subject {name!r}: not here, not checked")
            continue
        actual, _ = file_sha256(candidate)
        if actual != digest:
            problems.append(f"{name}: changed since it was recorded (sha256 {actual[:16]}, "
                            f"recorded {str(digest)[:16]})")
    metadata = statement.get("predicate", {}).get("runDetails", {}).get("metadata", {})
    return Verification(
        "attestation", str(path), str(path), verified=not problems,
        trust=f"trusted: {trusted[signer_key.key_id]}", signer=signer,
        signed_at=metadata.get("finishedOn"), algorithm="sha256",
        files=len(statement.get("subject", [])), problems=tuple(problems),
        notes=(f"predicate {statement.get('predicateType')}", *notes))
