"""Errors of the isolation service; each names the sandbox and what to do about it."""

from __future__ import annotations

from securenb.errors import SecurenbError, VerificationError


class IsolationError(SecurenbError):
    """A sandbox could not be set up or used as asked (bad option, bad path)."""


class BackendUnavailableError(IsolationError):
    """The requested sandbox does not work here; never replaced by a weaker one."""

    def __init__(self, backend: str, reason: str, hint: str) -> None:
        super().__init__(f"sandbox backend {backend!r} is unavailable: {reason}; {hint}")
        self.backend = backend


class SandboxDiedError(IsolationError):
    """The sandboxed kernel exited (crash, limit, kill); the parent kernel is unaffected."""


class UnsafeOutputError(VerificationError):
    """A sandbox wrote something that is not in a safe format or not a plain file."""
