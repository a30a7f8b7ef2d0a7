"""Unlock the workspace's signing key before the workspace is imported: peak memory.

Keys are stored in cosign's format, whose KDF is scrypt with N=2^16, r=8: it
needs 64 MiB while it runs (0.15 s), freed at once. A process's peak memory is
therefore what it has imported when it unlocks a key, plus 64 MiB. Importing
the workspace (pydantic for the policy, SQLite, the audit log, cryptography)
is ~45 MB, so a key unlocked by ``Workspace.signer()`` peaks at ~112 MB
whatever the rest of the command does; unlocked here, with only the key
modules imported (~30 MB), it peaks under 100 MB (docs/signing.md, Memory).

The policy names the keys (``[signing] key`` for releases, ``blob_key``,
``passphrase_env``; records are always signed by the ``workspace`` key), and
loading the policy imports pydantic. So :func:`unlock_policy_key` reads just
those settings from the policy file with ``tomllib``, and unlocks the key of
one purpose if it is a key store key whose passphrase is in the environment. The pre-read decides
nothing: :func:`adopt` hands the key to the workspace only once the workspace
has loaded and validated its policy, and only if that policy names the same
key, in the same key store, with the same passphrase variable; the key is then
the one ``Workspace.signer()`` would have unlocked itself. In any other case
(no workspace, a policy that does not parse or differs, a ``file:``/``env:``/
KMS reference, no passphrase variable, a wrong passphrase) nothing is adopted
and the workspace unlocks its key as before, reporting any error then.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from securenb.core.keys import DEFAULT_PASSPHRASE_ENV, KeyStore, PrivateKey
from securenb.core.keys.purposes import DEFAULT_KEYS, Purpose
from securenb.core.locate import DIR_NAME, raw_policy, workspace_root
from securenb.errors import SecurenbError

if TYPE_CHECKING:
    from securenb.core.workspace import Workspace

# The defaults of securenb.core.policy / workspace, which this module must not import
# (that is its point). A drift costs only memory: adopt() compares with the loaded
# and validated policy and never trusts these.
_KEYS = "keys"
_SETTING: dict[Purpose, str] = {"release": "key", "blob": "blob_key"}


@dataclass(frozen=True)
class UnlockedKey:
    """A key store key unlocked before the workspace was loaded, and how it was chosen."""

    keys_dir: Path
    name: str
    passphrase_env: str
    key: PrivateKey
    purpose: Purpose = "release"


def unlock_policy_key(start: Path | None = None,
                      purpose: Purpose = "release") -> UnlockedKey | None:
    """Unlock the policy's ``purpose`` key in ``start``'s workspace, or None (see the module)."""
    root = workspace_root(start)
    signing = _signing_table(root) if root else None
    if root is None or signing is None:
        return None
    name = DEFAULT_KEYS["record"] if purpose == "record" else \
        signing.get(_SETTING[purpose], DEFAULT_KEYS[purpose])
    env = signing.get("passphrase_env", DEFAULT_PASSPHRASE_ENV)
    if not isinstance(name, str) or ":" in name or not isinstance(env, str):
        return None  # not a key store key: KMS, file: and env: keys have no scrypt here
    passphrase = os.environ.get(env)
    if passphrase is None:
        return None  # Workspace.signer() asks on the terminal, or explains
    keys_dir = root / DIR_NAME / _KEYS
    try:  # load() refuses a name that is not a key store name (validate_name), as
        # resolve_signing_key() does, so no file outside the key store is read
        key = KeyStore(keys_dir).load(name, passphrase)
    except SecurenbError:
        return None  # reported by Workspace.signer(), once the policy is known to be valid
    return UnlockedKey(keys_dir, name, env, key, purpose)


def adopt(ws: Workspace, unlocked: UnlockedKey | None) -> bool:
    """Give ``ws`` the key unlocked early if its validated policy names exactly that key."""
    if unlocked is None:
        return False
    signing = ws.policy.signing  # loads and validates the policy (PolicyError if bad)
    wanted = (ws.key_ref(unlocked.purpose), signing.passphrase_env)
    if wanted != (unlocked.name, unlocked.passphrase_env):
        return False
    if ws.keystore.directory.resolve() != unlocked.keys_dir.resolve():
        return False
    try:  # what Workspace.purpose_signer() would unlock: same file, same secret, same checks
        ws.adopt_signer(unlocked.key, unlocked.purpose, unlocked.name)
    except SecurenbError:
        return False  # a key of another purpose: reported when the command asks for it
    return True


def open_workspace(start: Path | None = None,
                   purposes: tuple[Purpose, ...] = ("record",)) -> Workspace:
    """``Workspace.find(start)`` with the keys for ``purposes`` unlocked first, when they can be."""
    unlocked = [unlock_policy_key(start, purpose) for purpose in purposes]
    from securenb.core.workspace import Workspace

    ws = Workspace.find(start)
    for key in unlocked:
        adopt(ws, key)
    return ws


def _signing_table(root: Path) -> dict[str, Any] | None:
    """The raw ``[signing]`` table of the policy at ``root`` ({} if none); None if unsure."""
    try:
        table, _, _ = raw_policy(root)
    except (SecurenbError, KeyError, TypeError):
        return None  # an error for the policy loader to report
    signing = table.get("signing", {}) if isinstance(table, dict) else None
    return signing if isinstance(signing, dict) else None
