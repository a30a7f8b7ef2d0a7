"""DSSE envelopes (Dead Simple Signing Envelope, v1).

The signature covers PAE(payloadType, payload), never the JSON around it, so
an envelope can be re-serialised without breaking it. The payload is the
RFC 8785 canonical JSON of the statement.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from typing import Any

from securenb.core.canonical import canonical_json
from securenb.core.keys import PrivateKey, PublicKey
from securenb.errors import AttestationError, SignatureError

IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE pre-authentication encoding: ``DSSEv1 SP len SP type SP len SP body``."""
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def sign_envelope(
    statement: dict[str, Any], key: PrivateKey, payload_type: str = IN_TOTO_PAYLOAD_TYPE
) -> dict[str, Any]:
    """Sign ``statement`` and return the DSSE envelope as a dict."""
    payload = canonical_json(statement)
    sig = key.sign(pae(payload_type, payload))
    return {
        "payloadType": payload_type,
        "payload": base64.b64encode(payload).decode(),
        "signatures": [{"keyid": key.key_id, "sig": base64.b64encode(sig).decode()}],
    }


def verify_envelope(
    envelope: dict[str, Any], trusted: Iterable[PublicKey], source: str = "envelope"
) -> tuple[dict[str, Any], PublicKey]:
    """Return (statement, signer) if any signature verifies with a trusted key.

    ``source`` names the file or digest in error messages.
    """
    keys = {k.key_id: k for k in trusted}
    try:
        payload_type = envelope["payloadType"]
        payload = base64.b64decode(envelope["payload"], validate=True)
        signatures = envelope["signatures"]
    except (KeyError, TypeError, binascii.Error) as exc:
        raise AttestationError(f"{source}: malformed DSSE envelope ({exc})") from exc
    if not isinstance(signatures, list) or not signatures:
        raise AttestationError(f"{source}: DSSE envelope carries no signature")
    message = pae(payload_type, payload)
    for entry in signatures:
        key = keys.get(entry.get("keyid", "")) if isinstance(entry, dict) else None
        candidates = [key] if key else list(keys.values())
        for candidate in candidates:
            try:
                candidate.verify(base64.b64decode(entry["sig"], validate=True), message)
            except (SignatureError, binascii.Error, KeyError, TypeError):
                continue
            try:
                statement = json.loads(payload)
            except ValueError as exc:
                raise AttestationError(f"{source}: signed payload is not JSON ({exc})") from exc
            if not isinstance(statement, dict):
                raise AttestationError(f"{source}: signed payload is not a JSON object")
            return statement, candidate
    named = ", ".join(str(s.get("keyid", "?"))[:16] for s in signatures if isinstance(s, dict))
    raise AttestationError(
        f"{source}: no signature verifies with a trusted key (signed by key id {named or '?'})"
    )
