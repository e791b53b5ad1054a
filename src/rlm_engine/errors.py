"""Typed errors. Every error says what went wrong and what to do about it."""

from __future__ import annotations

from dataclasses import dataclass
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
    """Base class of every error this package raises on purpose.

    ``hint`` says what to do next (set a variable, start a server, change a flag); the CLI
    prints it on its own line. A class may set a default; an instance may pass its own.
    """

    hint: str = ""

    def __init__(self, *args: object, hint: str | None = None) -> None:
        super().__init__(*args)
        if hint is not None:
            self.hint = hint


@dataclass(frozen=True, slots=True)
class ErrorCause:
    """Why a run failed, kept past the exception: its class, a provider error's kind and
    the remedy, so a report can say what to do without reading the message."""

    type: str
    kind: str = ""
    hint: str = ""

    @classmethod
    def of(cls, exc: BaseException) -> ErrorCause:
        kind = ""
        if isinstance(exc, ProviderError):
            kind = exc.kind
        elif isinstance(exc, BudgetExceeded):
            kind = exc.budget
        else:  # errors of other layers name their kind (`StoreError`: "store")
            kind = str(getattr(type(exc), "cause_kind", ""))
        return cls(type(exc).__name__, kind, hint_for(exc))

    def to_dict(self) -> dict[str, str]:
        return {"type": self.type, "kind": self.kind, "hint": self.hint}


def hint_for(exc: BaseException) -> str:
    """What to do about ``exc``: its own ``hint``, else the remedy for its class."""
    from rlm_engine.remedies import type_hint

    own = getattr(exc, "hint", "")
    if isinstance(own, str) and own:
        return own
    return type_hint(cls.__name__ for cls in type(exc).__mro__)


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
        hint: str | None = None,
    ) -> None:
        from rlm_engine.remedies import provider_hint

        super().__init__(message, hint=hint or provider_hint(provider, kind))
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
        from rlm_engine.remedies import BUDGET_HINTS

        super().__init__(message, hint=BUDGET_HINTS.get(budget, ""))
        self.budget = budget


class SandboxError(RLMError):
    """The sandbox itself failed (not the code it ran)."""


class SandboxDied(SandboxError):
    """The worker process is gone; its variables are lost."""


class ChildRunFailed(RLMError):
    """A child RLM (``rlm_query``) stopped with an error; the cell that asked gets it."""

    hint = (
        "the child's own events (under its node id) say what failed; catch the error in "
        "the cell to go on without that answer, or fix its cause"
    )

    def __init__(self, stop_reason: str, detail: str, *, node_id: str = "") -> None:
        where = f" at {node_id}" if node_id else ""
        super().__init__(f"child RLM{where} stopped ({stop_reason}): {detail}")
        self.stop_reason = stop_reason
        self.detail = detail
        self.node_id = node_id


class ContextError(RLMError):
    """A context could not be loaded; the message names the path and the reason."""


class RunInterrupted(RLMError):
    """The run was stopped by Ctrl-C, SIGINT or SIGTERM; it is recorded and can be resumed."""

    def __init__(self, run_id: str, signal_name: str = "SIGINT") -> None:
        super().__init__(
            f"run {run_id} was interrupted by {signal_name}",
            hint=f"continue it with: rlm runs resume {run_id}",
        )
        self.run_id = run_id
        self.signal_name = signal_name
