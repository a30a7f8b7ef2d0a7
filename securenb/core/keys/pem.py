"""Read private and public keys from PEM text, with errors that name the problem.

``cryptography`` alone answers a truncated file, a corrupt one and a wrong
passphrase with look-alike messages; we frame the PEM ourselves first so each
gets its own message, and we never put key material or a passphrase in one.
Accepted: PKCS#8 (plain or encrypted), SEC1 ``EC PRIVATE KEY`` (plain or
OpenSSL-encrypted), cosign's encrypted keys, and SPKI ``PUBLIC KEY``.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from securenb.core.keys.cosign import COSIGN_LABELS, decrypt_cosign_key
from securenb.core.keys.types import PrivateKey, PublicKey
from securenb.errors import KeyError_, at

PRIVATE_LABELS = ("PRIVATE KEY", "ENCRYPTED PRIVATE KEY", "EC PRIVATE KEY", *COSIGN_LABELS)
PUBLIC_LABEL = "PUBLIC KEY"
MAX_KEY_FILE = 64 * 1024  # far above any key we accept; refuses to slurp a wrong file

_BEGIN = re.compile(r"^-----BEGIN ([A-Z0-9 ]+)-----$")
_END = re.compile(r"^-----END ([A-Z0-9 ]+)-----$")


@dataclass(frozen=True)
class PemBlock:
    """One ``-----BEGIN label-----`` block: its decoded body and its own text."""

    label: str
    headers: dict[str, str]
    body: bytes
    text: bytes

    @property
    def encrypted(self) -> bool:
        """True when a passphrase is needed to read the key in this block."""
        return (
            self.label in COSIGN_LABELS
            or self.label == "ENCRYPTED PRIVATE KEY"
            or self.headers.get("Proc-Type", "").endswith("ENCRYPTED")
        )


def read_key_file(path: Path) -> bytes:
    """Read a key file, refusing what cannot be one (missing, a folder, huge)."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_KEY_FILE + 1)
    except FileNotFoundError:
        raise KeyError_(at(path, "no such key file")) from None
    except IsADirectoryError:
        raise KeyError_(at(path, "is a folder, not a key file")) from None
    except OSError as exc:
        raise KeyError_(at(path, f"cannot read key file ({exc.strerror})")) from None
    if len(data) > MAX_KEY_FILE:
        raise KeyError_(at(path, f"larger than {MAX_KEY_FILE} bytes: not a key file"))
    return data


def parse_pem(data: bytes, source: str) -> list[PemBlock]:
    """Split ``data`` into PEM blocks; raise on truncated or corrupt framing."""
    if not data.strip():
        raise KeyError_(at(source, "is empty"))
    try:
        lines = data.decode("ascii").splitlines()
    except UnicodeDecodeError:
        raise KeyError_(at(source, "not a PEM file (binary data)")) from None
    blocks: list[PemBlock] = []
    label: str | None = None
    start = 0
    for number, raw in enumerate(lines):
        line = raw.strip()
        begin, end = _BEGIN.match(line), _END.match(line)
        if label is None:
            if begin:
                label, start = begin.group(1), number
            continue
        if begin or (end and end.group(1) != label):
            raise KeyError_(at(source, f"corrupt PEM: {label} block has no matching END line"))
        if end:
            blocks.append(_block(label, lines[start : number + 1], source))
            label = None
    if label is not None:
        raise KeyError_(
            at(source, f"truncated: the {label} block has no '-----END {label}-----' line")
        )
    if not blocks:
        raise KeyError_(at(source, "no PEM block found: not a PEM key file"))
    return blocks


def _block(label: str, lines: list[str], source: str) -> PemBlock:
    inner = [line.strip() for line in lines[1:-1]]
    headers: dict[str, str] = {}
    while inner and ":" in inner[0]:
        name, _, value = inner.pop(0).partition(":")
        headers[name.strip()] = value.strip()
    try:
        body = base64.b64decode("".join(inner), validate=True)
    except (ValueError, binascii.Error):
        raise KeyError_(at(source, f"corrupt {label} block: body is not base64")) from None
    if not body:
        raise KeyError_(at(source, f"corrupt {label} block: body is empty"))
    # key blocks are DER, but for cosign's JSON and legacy OpenSSL-encrypted bodies;
    # other labels are reported by what they are, not by their encoding
    der_label = label in (*PRIVATE_LABELS, PUBLIC_LABEL) and label not in COSIGN_LABELS
    if der_label and "Proc-Type" not in headers and not _der_complete(body):
        raise KeyError_(at(source, f"truncated or corrupt {label} block: DER length mismatch"))
    return PemBlock(label, headers, body, ("\n".join(lines) + "\n").encode("ascii"))


def _der_complete(der: bytes) -> bool:
    """True when ``der`` is exactly one DER SEQUENCE (catches cut-off bodies)."""
    if len(der) < 2 or der[0] != 0x30:
        return False
    first = der[1]
    if first < 0x80:
        return 2 + first == len(der)
    count = first & 0x7F
    if count == 0 or count > 4 or len(der) < 2 + count:
        return False
    return 2 + count + int.from_bytes(der[2 : 2 + count], "big") == len(der)


def private_block(data: bytes, source: str) -> PemBlock:
    """The single private-key block in ``data``."""
    blocks = parse_pem(data, source)
    found = [b for b in blocks if b.label in PRIVATE_LABELS]
    if not found:
        labels = ", ".join(sorted({b.label for b in blocks}))
        if any(b.label == PUBLIC_LABEL for b in blocks):
            raise KeyError_(at(source, "holds a public key, not a private key"))
        raise KeyError_(at(source, f"no private key in it (found {labels})"))
    if len(found) > 1:
        raise KeyError_(at(source, f"holds {len(found)} private keys; give one"))
    return found[0]


def load_private_key(data: bytes, passphrase: bytes | None, source: str) -> PrivateKey:
    """Decode the private key in ``data`` (decrypting it with ``passphrase`` if needed)."""
    block = private_block(data, source)
    if block.encrypted and passphrase is None:
        raise KeyError_(at(source, "the key is encrypted: a passphrase is needed"))
    if block.label in COSIGN_LABELS:
        assert passphrase is not None
        der = decrypt_cosign_key(block.body, passphrase, source)
        try:
            key = serialization.load_der_private_key(der, None)
        except ValueError:
            raise KeyError_(at(source, "cosign key decrypts to no readable private key")) from None
        return wrap_private(key, source)
    if block.encrypted and not passphrase:
        raise KeyError_(f"wrong passphrase for {source}")  # cryptography reads b"" as "none given"
    try:
        key = serialization.load_pem_private_key(
            block.text, passphrase if block.encrypted else None
        )
    except ValueError as exc:
        if block.encrypted and "password" in str(exc).lower():
            raise KeyError_(f"wrong passphrase for {source}") from None
        problem = "cannot be decrypted (corrupt)" if block.encrypted else "is not a readable key"
        raise KeyError_(at(source, f"the {block.label} block {problem}")) from None
    return wrap_private(key, source)


def load_public_key(data: bytes, source: str) -> PublicKey:
    """The public key in ``data``: a ``PUBLIC KEY`` block, or an unencrypted private key's."""
    blocks = parse_pem(data, source)
    public = [b for b in blocks if b.label == PUBLIC_LABEL]
    if public:
        return PublicKey.from_pem(public[0].text, source)
    block = private_block(data, source)
    if block.encrypted:
        raise KeyError_(
            at(source, "holds an encrypted private key: give its public key instead")
        )
    return load_private_key(data, None, source).public


def wrap_private(key: object, source: str) -> PrivateKey:
    """Accept only the algorithms we sign with (P-256, P-384, Ed25519)."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return PrivateKey(key)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if isinstance(key.curve, ec.SECP256R1 | ec.SECP384R1):
            return PrivateKey(key)
        raise KeyError_(
            at(source, f"unsupported elliptic curve {key.curve.name}: use P-256, P-384 or Ed25519")
        )
    kind = type(key).__name__.removesuffix("PrivateKey")
    raise KeyError_(at(source, f"unsupported key type {kind}: use ECDSA P-256, P-384 or Ed25519"))
