"""Typed errors. Every error says what went wrong and what to do about it."""

from __future__ import annotations

from typing import Literal

ProviderErrorKind = Literal[
    "rate_limit",
    "server",
    "timeout",
    "connection",
    "bad_request",
    "auth",
    "not_found",
    "context_length",
    "content_filter",
    "malformed",
    "circuit_open",
]

# Kinds worth retrying: the same request may succeed later.
RETRYABLE_KINDS: frozenset[ProviderErrorKind] = frozenset(
    {"rate_limit", "server", "timeout", "connection", "malformed"}
)


class RLMError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigurationError(RLMError):
    """Settings are missing or contradictory; the message says how to fix them."""


class MissingExtraError(ConfigurationError):
    """An optional backend was requested but its extra is not installed."""

    def __init__(self, what: str, extra: str, module: str) -> None:
        super().__init__(
            f"{what} needs the optional package {module!r}. "
            f"Install it with: pip install 'rlm-engine[{extra}]'"
        )
        self.extra = extra


class UnknownProviderError(ConfigurationError):
    """A model string names a provider that is not registered."""


class ProviderError(RLMError):
    """A model provider refused or failed a request."""

    def __init__(
        self,
        message: str,
        *,
        kind: ProviderErrorKind,
        provider: str = "",
        status: int | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.kind: ProviderErrorKind = kind
        self.provider = provider
        self.status = status
        self.retry_after_s = retry_after_s

    @property
    def retryable(self) -> bool:
        return self.kind in RETRYABLE_KINDS


class BudgetExceeded(RLMError):
    """A run budget (tokens, cost, sub-calls, time) is spent."""

    def __init__(self, budget: str, message: str) -> None:
        super().__init__(message)
        self.budget = budget


class SandboxError(RLMError):
    """The sandbox itself failed (not the code it ran)."""


class SandboxDied(SandboxError):
    """The worker process is gone; its variables are lost."""


class ContextError(RLMError):
    """A context could not be loaded; the message names the path and the reason."""
