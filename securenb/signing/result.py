"""What signing and verifying return: plain data the front-ends render.

A verification always says who signed, when, with what, and why the signer is
trusted or not; ``problems`` lists every thing found wrong, each naming the
file, cell or certificate concerned.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

Kind = Literal["model", "notebook", "blob", "attestation"]
Method = Literal["key", "certificate", "sigstore"]
Via = Literal["local", "server", "agent"]  # what held the key: this process, a server, the agent


@dataclass(frozen=True)
class SignerInfo:
    """Who signed: a key id, or a certificate identity and its issuer."""

    method: Method
    key_id: str | None = None
    identity: str | None = None
    issuer: str | None = None

    def describe(self) -> str:
        if self.method == "key":
            return f"key {(self.key_id or '?')[:16]}"
        who = f"{self.identity} (issuer {self.issuer})"
        return f"{'Sigstore' if self.method == 'sigstore' else 'certificate'} {who}"

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SignerInfo:
        return cls(**data)


@dataclass(frozen=True)
class SignResult:
    """A signature written: where, by whom, over what."""

    kind: Kind
    path: str
    signature: str
    signer: SignerInfo
    digest: str
    algorithm: str
    files: int
    signed_at: str
    via: Via = "local"
    attestation: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["signer"] = self.signer.to_json()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SignResult:
        return cls(**{**data, "signer": SignerInfo.from_json(data["signer"])})

    def summary(self) -> str:
        return (f"signed {self.kind} {self.path} -> {self.signature} with "
                f"{self.signer.describe()} ({self.algorithm}, {self.files} file(s)) "
                f"via {self.signed_by}")

    @property
    def signed_by(self) -> str:
        """What held the key, for people: "the securenb agent", "this process"."""
        return "this process" if self.via == "local" else f"the securenb {self.via}"


@dataclass(frozen=True)
class Verification:
    """The outcome of checking one signature against the files and the trust policy."""

    kind: Kind
    path: str
    signature: str
    verified: bool
    trust: str
    signer: SignerInfo | None = None
    signed_at: str | None = None
    algorithm: str | None = None
    files: int = 0
    digest: str | None = None
    problems: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    attestation: str | None = None
    run: dict[str, Any] | None = None  # a run output's status, exit code and sandbox

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["signer"] = self.signer.to_json() if self.signer else None
        data["problems"] = list(self.problems)
        data["notes"] = list(self.notes)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Verification:
        signer = SignerInfo.from_json(data["signer"]) if data.get("signer") else None
        return cls(**{**data, "signer": signer, "problems": tuple(data.get("problems", ())),
                      "notes": tuple(data.get("notes", ()))})

    def summary(self) -> str:
        """One line a person reads at a glance."""
        if self.verified:
            when = f", {self.signed_at}" if self.signed_at else ""
            signer = self.signer.describe() if self.signer else "?"
            return f"VERIFIED {self.kind} {self.path}: signed by {signer}{when}"
        first = self.problems[0] if self.problems else self.trust
        more = f" (+{len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
        return f"FAILED {self.kind} {self.path}: {first}{more}"

    def lines(self) -> list[str]:
        """The full report as text: summary, then who/when/what/why, then problems."""
        out = [self.summary()]
        if self.signer:
            out.append(f"  signer:    {self.signer.describe()}")
        out.append(f"  signed:    {self.signed_at or 'unknown (the signature carries no time)'}")
        if self.algorithm:
            out.append(f"  hashes:    {self.algorithm}, {self.files} file(s)")
        out.append(f"  signature: {self.signature}")
        out.append(f"  trust:     {self.trust}")
        out += [f"  problem:   {p}" for p in self.problems]
        out += [f"  note:      {n}" for n in self.notes]
        return [_printable(line) for line in out]


def _printable(line: str) -> str:
    """A report line as a terminal shows it: what the checked files control (cell ids, a
    run's exception, a claimed time) may hold escapes or newlines that would overwrite
    other lines; those characters are written as Python escapes instead."""
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in line)
