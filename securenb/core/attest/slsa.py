"""SLSA Provenance v1 for runs: what ran, with which inputs, where, and how it ended.

Parameters stay typed JSON (not protobuf Struct) so integers stay integers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from securenb import __version__
from securenb.core.attest.statement import (
    SLSA_PROVENANCE_PREDICATE,
    Subject,
    make_statement,
)

BUILD_TYPE_BASE = "https://securenb.dev/buildtypes"
BUILDER_ID_BASE = "https://securenb.dev/builder"


@dataclass(frozen=True)
class Dependency:
    """An input the run read: dataset, base model, cell source, package set."""

    uri: str
    sha256: str
    name: str | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"uri": self.uri, "digest": {"sha256": self.sha256}}
        if self.name:
            data["name"] = self.name
        return data


@dataclass
class RunProvenance:
    """Everything a verifier needs to know about one run, to build the predicate."""

    build_type: str
    run_id: str
    started: str
    finished: str
    external_parameters: dict[str, Any]
    internal_parameters: dict[str, Any] = field(default_factory=dict)
    dependencies: list[Dependency] = field(default_factory=list)
    builder: str = "local"
    byproducts: list[dict[str, Any]] = field(default_factory=list)

    def predicate(self) -> dict[str, Any]:
        return {
            "buildDefinition": {
                "buildType": f"{BUILD_TYPE_BASE}/{self.build_type}/v1",
                "externalParameters": self.external_parameters,
                "internalParameters": self.internal_parameters,
                "resolvedDependencies": [d.to_json() for d in self.dependencies],
            },
            "runDetails": {
                "builder": {
                    "id": f"{BUILDER_ID_BASE}/{self.builder}",
                    "version": {"securenb": __version__},
                },
                "metadata": {
                    "invocationId": self.run_id,
                    "startedOn": self.started,
                    "finishedOn": self.finished,
                },
                "byproducts": self.byproducts,
            },
        }

    def statement(self, outputs: list[Subject]) -> dict[str, Any]:
        """The in-toto statement whose subjects are the run's outputs."""
        return make_statement(outputs, SLSA_PROVENANCE_PREDICATE, self.predicate())
