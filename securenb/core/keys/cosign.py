"""cosign's encrypted private keys (``cosign generate-key-pair``): read and write.

cosign stores a PEM block labelled ``ENCRYPTED SIGSTORE PRIVATE KEY`` (older:
``ENCRYPTED COSIGN PRIVATE KEY``) whose body is JSON from go-securesystemslib's
``encrypted`` package: scrypt derives a 32-byte key from the password and NaCl
secretbox (XSalsa20-Poly1305) seals the PKCS#8 DER key. We accept only the
scrypt parameters that package accepts, so a tampered file cannot make us burn
gigabytes of memory, and we report a wrong password apart from a malformed file.

We also store our own keys at rest in this format (scrypt N=2^16): far
stronger than PKCS#8's PBKDF2 defaults, and cosign can sign with them as is.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from typing import Any

import nacl.exceptions
import nacl.secret
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from securenb.errors import KeyError_, at

COSIGN_LABELS = ("ENCRYPTED SIGSTORE PRIVATE KEY", "ENCRYPTED COSIGN PRIVATE KEY")

# go-securesystemslib's CheckParams: "legacy" 2^15, "standard" 2^16, "OWASP" 2^17.
SCRYPT_PARAMS = frozenset({(2**15, 8, 1), (2**16, 8, 1), (2**17, 8, 1)})
_MIN_SALT = 16


WRITE_LABEL = COSIGN_LABELS[0]
WRITE_N = 2**16


def encrypt_cosign_key(der: bytes, passphrase: bytes) -> bytes:
    """Seal a PKCS#8 DER key as cosign does; return the PEM text."""
    salt = os.urandom(32)
    nonce = os.urandom(nacl.secret.SecretBox.NONCE_SIZE)
    key = Scrypt(salt=salt, length=nacl.secret.SecretBox.KEY_SIZE, n=WRITE_N, r=8, p=1).derive(
        passphrase
    )
    sealed = nacl.secret.SecretBox(key).encrypt(der, nonce).ciphertext
    doc = {
        "kdf": {
            "name": "scrypt",
            "params": {"N": WRITE_N, "r": 8, "p": 1},
            "salt": base64.b64encode(salt).decode(),
        },
        "cipher": {"name": "nacl/secretbox", "nonce": base64.b64encode(nonce).decode()},
        "ciphertext": base64.b64encode(sealed).decode(),
    }
    body = base64.encodebytes(json.dumps(doc).encode()).decode().replace("\n", "")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return (
        f"-----BEGIN {WRITE_LABEL}-----\n" + "\n".join(lines) + f"\n-----END {WRITE_LABEL}-----\n"
    ).encode()


def decrypt_cosign_key(body: bytes, passphrase: bytes, source: str) -> bytes:
    """Return the DER private key sealed in a cosign key body (the PEM payload)."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise KeyError_(at(source, "corrupt cosign key: its body is not JSON")) from None
    kdf = _section(doc, "kdf", source)
    cipher = _section(doc, "cipher", source)
    if kdf.get("name") != "scrypt":
        raise KeyError_(at(source, f"unsupported cosign kdf {kdf.get('name')!r}: expected scrypt"))
    if cipher.get("name") != "nacl/secretbox":
        raise KeyError_(
            at(source, f"unsupported cosign cipher {cipher.get('name')!r}: expected nacl/secretbox")
        )
    params = _section(kdf, "params", source)
    n, r, p = params.get("N"), params.get("r"), params.get("p")
    if not (isinstance(n, int) and isinstance(r, int) and isinstance(p, int)) or (
        (n, r, p) not in SCRYPT_PARAMS
    ):
        raise KeyError_(
            at(
                source,
                f"unsupported scrypt parameters N={n!r} r={r!r} p={p!r}: cosign uses "
                "N of 2^15, 2^16 or 2^17 with r=8, p=1",
            )
        )
    salt = _b64(kdf, "salt", source)
    nonce = _b64(cipher, "nonce", source)
    ciphertext = _b64(doc, "ciphertext", source)
    if len(salt) < _MIN_SALT:
        raise KeyError_(at(source, f"corrupt cosign key: salt of {len(salt)} bytes is too short"))
    if len(nonce) != nacl.secret.SecretBox.NONCE_SIZE:
        raise KeyError_(at(source, f"corrupt cosign key: nonce of {len(nonce)} bytes, expected 24"))
    if len(ciphertext) <= nacl.secret.SecretBox.MACBYTES:
        raise KeyError_(at(source, "corrupt cosign key: ciphertext is truncated"))
    key = Scrypt(salt=salt, length=nacl.secret.SecretBox.KEY_SIZE, n=n, r=r, p=p).derive(
        passphrase
    )
    try:
        return nacl.secret.SecretBox(key).decrypt(ciphertext, nonce)
    except nacl.exceptions.CryptoError:
        # secretbox authenticates: a wrong password and a changed ciphertext look alike.
        raise KeyError_(f"wrong passphrase for {source}") from None


def _section(doc: Any, name: str, source: str) -> dict[str, Any]:
    value = doc.get(name) if isinstance(doc, dict) else None
    if not isinstance(value, dict):
        raise KeyError_(at(source, f"corrupt cosign key: missing or invalid {name!r}"))
    return value


def _b64(section: dict[str, Any], name: str, source: str) -> bytes:
    value = section.get(name)
    try:
        if not isinstance(value, str):
            raise ValueError(name)
        return base64.b64decode(value, validate=True)
    except (ValueError, binascii.Error):
        raise KeyError_(at(source, f"corrupt cosign key: {name!r} is not base64")) from None
