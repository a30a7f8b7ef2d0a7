"""The trust policy resolved for one project: which keys, roots and identities we accept.

Trust comes from the policy file only (plus the workspace's own key for the
purpose unless ``trust.workspace_key = false``), and is for one purpose:
``trust.keys`` sign models and notebooks, ``trust.blob_keys`` cosign blobs
(securenb.core.keys.purposes). A key listed for both is refused, and a key of
the workspace made for another purpose is never trusted. A key given on the
command line supplies key material, e.g. for a key id listed in the policy; it
does not make the key trusted, so a signature by it is reported as valid but
untrusted.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from securenb.core.keys import KeyStore, PublicKey, resolve_public_key
from securenb.core.keys.purposes import USES, Purpose
from securenb.core.policy import CertificateAuthority, Identity, TrustPolicy
from securenb.errors import PolicyError, SecurenbError

if TYPE_CHECKING:
    from securenb.core.workspace import Workspace

_KEY_ID = re.compile(r"^(?:sha256:)?([0-9a-f]{64})$")
SIGSTORE_PRODUCTION_ROOT = "https%3A%2F%2Ftuf-repo-cdn.sigstore.dev"


@dataclass(frozen=True)
class CandidateKey:
    """A public key we can check signatures with; ``trusted`` says why, None if not."""

    key: PublicKey
    source: str
    trusted: str | None
    refused: str | None = None

    @property
    def pem_sha256(self) -> str:
        """model-signing's key hint: SHA-256 of the SPKI PEM."""
        return hashlib.sha256(self.key.pem()).hexdigest()


@dataclass(frozen=True)
class ResolvedAuthority:
    """One ``trust.certificate_roots`` entry with its root files made absolute."""

    index: int
    roots: tuple[Path, ...]
    identities: tuple[Identity, ...]

    @property
    def label(self) -> str:
        return f"trust.certificate_roots[{self.index}]"


class Trust:
    """Keys, certificate roots and Sigstore identities we accept, ready to check with."""

    def __init__(
        self,
        policy: TrustPolicy,
        root: Path,
        *,
        source: str,
        purpose: Purpose = "release",
        workspace_key: PublicKey | None = None,
        known_keys: Sequence[PublicKey] = (),
        extra_keys: Sequence[tuple[PublicKey, str]] = (),
        keystore: KeyStore | None = None,
        other_purposes: dict[str, str] | None = None,
    ) -> None:
        self.policy = policy
        self.root = root
        self.source = source
        self.purpose = purpose
        self.field = "trust.keys" if purpose == "release" else "trust.blob_keys"
        other_field = "trust.blob_keys" if purpose == "release" else "trust.keys"
        # key id -> why it is never trusted here: made, or listed, for another purpose
        self.refused: dict[str, str] = dict(other_purposes or {})
        listed_ids: dict[str, str] = {}
        keys: dict[str, CandidateKey] = {}
        other, _ = self._entries(policy.blob_keys if purpose == "release" else policy.keys,
                                 keystore)
        mine, listed_ids = self._entries(self._listed(purpose), keystore)
        for entry, key in mine:
            keys.setdefault(key.key_id, CandidateKey(key, entry,
                                                     f"listed in {self.field} ({entry})"))
        for entry, key in other:
            if key.key_id in keys or key.key_id in listed_ids:
                raise PolicyError(f"{source}: key {key.key_id[:16]} ({entry}) is listed in both "
                                  f"{self.field} and {other_field}: a key has one purpose")
            self.refused.setdefault(key.key_id, f"listed in {other_field}")
        if policy.workspace_key and workspace_key is not None:
            keys.setdefault(workspace_key.key_id, CandidateKey(
                workspace_key, "workspace key",
                f"the workspace {purpose} key (trust.workspace_key)"))
        for key in known_keys:
            if key.key_id in listed_ids and key.key_id not in keys:
                keys[key.key_id] = CandidateKey(key, "workspace key store",
                                                self._by_id(listed_ids[key.key_id]))
        for key, origin in extra_keys:
            if key.key_id not in keys:
                entry_ = listed_ids.get(key.key_id)
                keys[key.key_id] = CandidateKey(key, origin,
                                                self._by_id(entry_) if entry_ else None)
        for key_id, why in self.refused.items():  # another purpose's key is never trusted
            if key_id in keys:
                keys[key_id] = dataclasses.replace(keys[key_id], trusted=None,
                                                   refused=f"{why}, not for {USES[purpose]}")
        self.keys = list(keys.values())

    def _listed(self, purpose: Purpose) -> tuple[str, ...]:
        return self.policy.keys if purpose == "release" else self.policy.blob_keys

    def _entries(self, entries: Sequence[str], keystore: KeyStore | None
                 ) -> tuple[list[tuple[str, PublicKey]], dict[str, str]]:
        """(entry, key) of the key entries, and the key ids listed as ids."""
        keys, ids = [], {}
        for entry in entries:
            match = _KEY_ID.match(entry.strip().lower())
            if match:
                ids[match.group(1)] = entry
            else:
                keys.append((entry, self._load_key(entry, keystore)))
        return keys, ids

    def _by_id(self, entry: str) -> str:
        return f"key id listed in {self.field} ({entry})"

    @classmethod
    def for_workspace(cls, ws: Workspace, extra_keys: Sequence[tuple[PublicKey, str]] = (),
                      purpose: Purpose = "release") -> Trust:
        """The trust of ``ws``'s policy for ``purpose``; ``extra_keys`` (key, origin) are
        given by the user (securenb.signing.service.given_keys)."""
        policy, source = ws.policy_and_source
        infos = [info for info in ws.keystore.list() if info.provider == "keystore"]
        known = [ws.keystore.public(info.name) for info in infos if info.purpose == purpose]
        others = {info.key_id: f"the workspace's {info.purpose or 'unmigrated'} key "
                               f"{info.name!r}" for info in infos if info.purpose != purpose}
        return cls(policy.trust, ws.root, source=str(source or "the default policy"),
                   purpose=purpose, workspace_key=_workspace_key(ws, purpose), known_keys=known,
                   extra_keys=extra_keys, keystore=ws.keystore, other_purposes=others)

    @classmethod
    def for_files(cls, refs: Sequence[str], policy_file: Path | None,
                  purpose: Purpose = "release") -> Trust:
        """A recipient's trust: the keys given (``--key``), or a policy file's ``[trust]``."""
        if policy_file is not None:
            return cls.from_policy_file(policy_file, refs, purpose)
        refs = tuple(as_key_ref(r) for r in refs)
        policy = (TrustPolicy(workspace_key=False, keys=refs) if purpose == "release"
                  else TrustPolicy(workspace_key=False, blob_keys=refs))
        return cls(policy, Path.cwd(), source="the keys given with --key", purpose=purpose)

    @classmethod
    def from_policy_file(cls, path: Path, refs: Sequence[str], purpose: Purpose) -> Trust:
        """The ``[trust]`` of a policy file (``securenb.toml`` or ``pyproject.toml``)."""
        from securenb.core.locate import read_toml
        from securenb.core.policy import parse_policy

        data = read_toml(path)
        table = ""
        if path.name == "pyproject.toml":
            data, table = data.get("tool", {}).get("securenb", {}), "tool.securenb"
        policy = parse_policy(data, path, table).trust
        extra = [(resolve_public_key(as_key_ref(r)), f"--key {r}") for r in refs]
        return cls(policy, path.resolve().parent, source=str(path), purpose=purpose,
                   extra_keys=extra)

    def record_keys(self) -> list[tuple[PublicKey, str]]:
        """``trust.record_keys``: keys whose attestations and checkpoints are trusted."""
        found = []
        for entry in self.policy.record_keys:
            if _KEY_ID.match(entry.strip().lower()):
                raise PolicyError(f"{self.source}: trust.record_keys entry {entry!r}: give the "
                                  "public key file (a key id alone cannot check a signature)")
            found.append((self._load_key(entry, None), f"listed in trust.record_keys ({entry})"))
        return found

    def _load_key(self, entry: str, keystore: KeyStore | None) -> PublicKey:
        try:
            if ":" in entry and not Path(entry).is_absolute():
                return resolve_public_key(entry, keystore)
            return PublicKey.from_pem(self.path(entry).read_bytes(), entry)
        except (OSError, SecurenbError) as exc:
            problem = exc.strerror if isinstance(exc, OSError) else str(exc)
            raise PolicyError(f"{self.source}: trust.keys entry {entry!r}: {problem}") from None

    def path(self, entry: str) -> Path:
        """A policy path: relative to the project root."""
        path = Path(entry).expanduser()
        return path if path.is_absolute() else self.root / path

    # -- keys ------------------------------------------------------------------
    def key_by_id(self, key_id: str) -> CandidateKey | None:
        return next((k for k in self.keys if k.key.key_id == key_id), None)

    def key_by_hint(self, hint: str) -> CandidateKey | None:
        return next((k for k in self.keys if k.pem_sha256 == hint), None)

    def untrusted(self, key: CandidateKey) -> str:
        if key.refused:
            return f"key {key.key.key_id[:16]} ({key.source}) is {key.refused}"
        return (f"key {key.key.key_id[:16]} ({key.source}) is not in {self.field} of "
                f"{self.source}")

    # -- certificates and Sigstore ---------------------------------------------------
    @property
    def authorities(self) -> list[ResolvedAuthority]:
        return [_resolve(i, ca, self) for i, ca in enumerate(self.policy.certificate_roots)]

    @property
    def identities(self) -> tuple[Identity, ...]:
        return self.policy.identities

    def sigstore_trusted_root(self) -> tuple[Path, str]:
        """(trusted_root.json, label): the policy's, else the production root in ``sigstore``."""
        if self.policy.sigstore_trusted_root:
            path = self.path(self.policy.sigstore_trusted_root)
            if not path.is_file():
                raise PolicyError(f"{self.source}: trust.sigstore_trusted_root: {path} is missing")
            return path, str(path)
        pinned = resources.files("sigstore") / "_store" / SIGSTORE_PRODUCTION_ROOT
        pinned = pinned / "trusted_root.json"
        return Path(str(pinned)), "the production trusted root pinned in the sigstore package"


def _resolve(index: int, ca: CertificateAuthority, trust: Trust) -> ResolvedAuthority:
    roots = tuple(trust.path(r) for r in ca.roots)
    for root in roots:
        if not root.is_file():
            raise PolicyError(f"{trust.source}: trust.certificate_roots[{index}]: "
                              f"{root} is missing")
    return ResolvedAuthority(index, roots, ca.identities)


def as_key_ref(ref: str) -> str:
    """A bare path given on the command line is a file, not a key store name."""
    return ref if ":" in ref or not Path(ref).exists() else f"file:{ref}"


def _workspace_key(ws: Workspace, purpose: Purpose) -> PublicKey | None:
    """The workspace's key store key for ``purpose``, if the policy names one."""
    ref = ws.key_ref(purpose)
    if ":" in ref:
        return None
    try:
        ws.check_purpose(ref, purpose)
        return ws.keystore.public(ref)
    except SecurenbError:
        return None
