"""Dependency vulnerabilities: package sets checked against OSV advisories."""

from securenb.vulns.check import (
    VULNERABILITIES_PREDICATE,
    check,
    environment_digest,
    record,
    run_environment,
)
from securenb.vulns.packages import PackageSet, environment, from_file
from securenb.vulns.report import Finding, VulnReport, at_or_above

__all__ = ["VULNERABILITIES_PREDICATE", "Finding", "PackageSet", "VulnReport", "at_or_above",
           "check", "environment", "environment_digest", "from_file", "record",
           "run_environment"]
