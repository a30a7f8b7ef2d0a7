"""Policy: ``[tool.securenb]`` in pyproject.toml, or a ``securenb.toml``.

Validated on load with pydantic (``extra="forbid"``): a typo is an error that
names the file and the dotted key, never a silently ignored setting. Sections
are added here as services land; every field has a secure default.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from securenb.core.canonical import canonical_json
from securenb.core.locate import find_policy_file, raw_policy, read_toml
from securenb.errors import PolicyError

__all__ = ["Policy", "find_policy_file", "load_policy", "parse_policy", "read_toml"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IsolationPolicy(_Section):
    """Where untrusted training code runs. No silent fallback to an unisolated run."""

    backend: Literal["bwrap", "podman", "docker", "kubernetes", "unsafe-local"] = "bwrap"
    image: str | None = None
    network: Literal["none"] = "none"
    memory: str = "4g"
    cpu_seconds: int = Field(default=3600, gt=0)
    processes: int = Field(default=256, gt=0)
    timeout: int = Field(default=3600, gt=0)
    gpus: int | Literal["all"] = 0


class SigningPolicy(_Section):
    """Which keys sign releases (models, notebooks) and cosign blobs in this workspace.

    Records (attestations, checkpoints) are always signed by the key store's
    ``workspace`` key (securenb.core.keys.purposes).
    """

    key: str = "release"
    blob_key: str = "blob"
    passphrase_env: str = "SECURENB_KEY_PASSPHRASE"  # noqa: S105 - a variable name
    # With no securenb server (papermill, terminal IPython) may a kernel unlock the key
    # itself? False keeps keys out of every kernel: signing then needs the server.
    in_kernel: bool = True


class Identity(_Section):
    """A signer identity: an issuer and a subject, each exact or a regular expression.

    Regular expressions must match the whole value (``re.fullmatch``), so
    ``.*@example\\.com`` cannot be satisfied by ``evil@example.com.attacker.net``.
    """

    issuer: str | None = None
    issuer_regex: str | None = None
    subject: str | None = None
    subject_regex: str | None = None

    @model_validator(mode="after")
    def _one_of_each(self) -> Identity:
        for name in ("issuer", "subject"):
            exact, regex = getattr(self, name), getattr(self, f"{name}_regex")
            if (exact is None) == (regex is None):
                raise ValueError(f"give exactly one of {name!r} or '{name}_regex'")
            if regex is not None:
                try:
                    re.compile(regex)
                except re.error as exc:
                    raise ValueError(
                        f"'{name}_regex' is not a regular expression ({exc})"
                    ) from None
        return self

    def matches(self, issuer: str | None, subjects: Iterable[str]) -> bool:
        """True if ``issuer`` and one of ``subjects`` (subject DN, SANs) are allowed."""
        if issuer is None or not _match(self.issuer, self.issuer_regex, issuer):
            return False
        return any(_match(self.subject, self.subject_regex, s) for s in subjects)

    def describe(self) -> str:
        subject = self.subject if self.subject is not None else f"/{self.subject_regex}/"
        issuer = self.issuer if self.issuer is not None else f"/{self.issuer_regex}/"
        return f"{subject} (issuer {issuer})"


def _match(exact: str | None, regex: str | None, value: str) -> bool:
    if exact is not None:
        return value == exact
    return regex is not None and re.fullmatch(regex, value) is not None


class CertificateAuthority(_Section):
    """Certificates chaining to ``roots`` (PEM files), signed by one of ``identities``."""

    roots: tuple[str, ...] = Field(min_length=1)
    identities: tuple[Identity, ...] = Field(min_length=1)


class TrustPolicy(_Section):
    """Who may sign what we accept.

    ``keys``: who may sign models and notebooks: public key files (relative to
    the project root), key references (``file:``, ``env:``, ``keyring:``,
    plug-in schemes) or key ids (``sha256:<hex>`` of the SPKI DER).
    ``blob_keys``: the same, for cosign blobs (a key is trusted for one purpose
    only). ``record_keys``: the keys whose attestations and checkpoints are
    trusted (pinned outside ``.securenb/``). ``workspace_key``: the workspace's
    own release and blob keys are trusted, each for its purpose.
    ``certificate_roots``: X.509 roots with the identities allowed under each.
    ``identities``: Sigstore keyless signers, checked against
    ``sigstore_trusted_root`` (default: the production root pinned in the
    ``sigstore`` package, so verification needs no network).
    """

    keys: tuple[str, ...] = ()
    blob_keys: tuple[str, ...] = ()
    record_keys: tuple[str, ...] = ()
    workspace_key: bool = True
    certificate_roots: tuple[CertificateAuthority, ...] = ()
    identities: tuple[Identity, ...] = ()
    sigstore_trusted_root: str | None = None


class AuditPolicy(_Section):
    """What ``audit verify`` trusts, pinned here because this file is reviewed and lives
    outside ``.securenb/`` (which anyone who can rewrite the log can also rewrite).

    ``key``: the public key file of the log's signer (relative to the project root,
    outside ``.securenb/``) or its key id ``sha256:<hex>`` (SHA-256 of the SPKI DER).
    ``origin``: the log's name, as its checkpoints state it.
    """

    key: str | None = None
    origin: str | None = None


class ScanPolicy(_Section):
    allow_globals: tuple[str, ...] = ()


class FairnessPolicy(_Section):
    max_demographic_parity_difference: float = Field(default=0.1, ge=0, le=1)
    max_equalized_odds_difference: float = Field(default=0.1, ge=0, le=1)
    min_demographic_parity_ratio: float = Field(default=0.8, ge=0, le=1)


class DataPolicy(_Section):
    require_encrypted: bool = False
    require_validated: bool = False


class GatePolicy(_Section):
    """What an artifact needs before it may go on (``securenb gate``).

    A required check that never ran makes the verdict INCOMPLETE, never PASS.
    """

    require_signature: bool = True
    require_scan: bool = True
    require_isolated_training: bool = True
    # a %%secure_train run a kernel recorded through its server is that kernel's word:
    # false counts only runs the server or `securenb run` recorded
    trust_kernel_runs: bool = True
    require_fairness: bool = False
    require_vulnerability_scan: bool = False
    # a vulnerability at or above this severity fails the gate
    fail_on_severity: Literal["low", "medium", "high", "critical"] = "high"
    require_encrypted_data: bool = False
    require_validated_data: bool = False
    require_robustness: bool = False
    # lowest accuracy under attack (FGSM/PGD) an artifact may have
    min_robust_accuracy: float = Field(default=0.0, ge=0, le=1)


class Policy(_Section):
    """The whole policy. ``source`` is the file it came from (None: defaults)."""

    isolation: IsolationPolicy = IsolationPolicy()
    signing: SigningPolicy = SigningPolicy()
    trust: TrustPolicy = TrustPolicy()
    audit: AuditPolicy = AuditPolicy()
    scan: ScanPolicy = ScanPolicy()
    fairness: FairnessPolicy = FairnessPolicy()
    data: DataPolicy = DataPolicy()
    gate: GatePolicy = GatePolicy()
    roles: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    # role -> permissions ("resource:action"), replacing or adding a server RBAC role
    permissions: dict[str, tuple[str, ...]] = Field(default_factory=dict)

    def digest(self) -> str:
        """SHA-256 of the canonical policy, recorded in gate verdicts and provenance."""
        return hashlib.sha256(canonical_json(self.model_dump(mode="json"))).hexdigest()


def load_policy(root: Path) -> tuple[Policy, Path | None]:
    """Load and validate the policy of the project at ``root``; defaults if none."""
    data, path, table = raw_policy(root)
    if path is None:
        return Policy(), None
    return parse_policy(data, path, table), path


def parse_policy(data: Any, path: Path, table: str = "") -> Policy:
    """Validate ``data``; errors name ``path`` and the dotted key."""
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        messages = [_describe(err, table) for err in exc.errors()]
        raise PolicyError(f"{path}: " + "; ".join(messages)) from None


def _describe(err: Any, table: str) -> str:
    loc = [str(p) for p in err["loc"]]
    key = ".".join(([table] if table else []) + loc)
    if err["type"] == "extra_forbidden":
        section: type[BaseModel] = Policy
        for part in loc[:-1]:
            field = section.model_fields.get(part)
            annotation = getattr(field, "annotation", None)
            if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
                break
            section = annotation
        close = difflib.get_close_matches(loc[-1], list(section.model_fields), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"unknown key {key!r}{hint}"
    return f"invalid value for {key!r}: {err['msg']} (got {err.get('input')!r})"
