"""Envelope encryption: a fresh data key per dataset, wrapped by a KEK.

Rotating the KEK unwraps and re-wraps 32 bytes; the ciphertext is untouched.
The wrap's associated data is the digest of the manifest, which binds the key
to that manifest: a changed manifest (roles, schema, digest) no longer
unwraps, so only a KEK holder can change what a dataset claims.
"""

from __future__ import annotations

import base64

from securenb.data.data_key import DataKey
from securenb.data.errors import DecryptionError
from securenb.data.kek import KeyEncryptionKey
from securenb.data.manifest import KeyEnvelope, Manifest
from securenb.errors import KeyError_, at

WRAP_CONTEXT = b"securenb/dataset-key/v1\n"


def key_binding(manifest: Manifest) -> bytes:
    """Associated data of the wrapped key: context string and manifest digest."""
    return WRAP_CONTEXT + bytes.fromhex(manifest.digest())


def wrap_data_key(data_key: DataKey, kek: KeyEncryptionKey, manifest: Manifest) -> KeyEnvelope:
    wrapped = kek.wrap(data_key.material, key_binding(manifest))
    return KeyEnvelope(
        kek_uri=kek.uri,
        kek_id=kek.key_id,
        algorithm=kek.algorithm,
        wrapped_key=base64.b64encode(wrapped).decode(),
    )


def unwrap_data_key(
    envelope: KeyEnvelope, kek: KeyEncryptionKey, manifest: Manifest, name: str
) -> DataKey:
    """The dataset's data key, or an error saying which KEK was expected."""
    if kek.key_id != envelope.kek_id:
        raise KeyError_(
            at(name, f"the data key is wrapped by KEK {envelope.kek_id} ({envelope.kek_uri}); "
                     f"the KEK given is {kek.key_id} ({kek.uri})")
        )
    try:
        material = kek.unwrap(base64.b64decode(envelope.wrapped_key), key_binding(manifest))
    except (DecryptionError, ValueError):
        raise DecryptionError(
            at(name, f"the data key does not unwrap with KEK {kek.key_id}: the manifest was "
                     "changed after encryption, or the wrapped key was tampered with")
        ) from None
    return DataKey(material)


def rewrap(
    envelope: KeyEnvelope,
    old: KeyEncryptionKey,
    new: KeyEncryptionKey,
    manifest: Manifest,
    name: str,
) -> KeyEnvelope:
    """Move the data key from ``old`` to ``new`` without touching the ciphertext."""
    return wrap_data_key(unwrap_data_key(envelope, old, manifest, name), new, manifest)
