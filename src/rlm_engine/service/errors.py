"""Errors of the run service. Not-found is the store's `RunNotFoundError` /
`SessionNotFoundError`, raised as well for the ids of another tenant."""

from __future__ import annotations

from typing import Literal

from rlm_engine.errors import RLMError

TenantLimit = Literal["concurrent_runs", "daily_budget"]


class TenantLimitError(RLMError):
    """A tenant is at one of its limits; `retry_after_s` says when to try again."""

    def __init__(self, message: str, *, limit: TenantLimit, retry_after_s: float) -> None:
        super().__init__(
            message, hint=f"wait {retry_after_s:.0f} s and try again, or raise the limit"
        )
        self.limit: TenantLimit = limit
        self.retry_after_s = retry_after_s


class ContextTooLargeError(RLMError):
    """A context is larger than the service accepts."""

    def __init__(self, message: str, *, max_bytes: int) -> None:
        super().__init__(
            message, hint=f"give a context of at most {max_bytes:,} bytes, or split it"
        )
        self.max_bytes = max_bytes


class PathNotAllowedError(RLMError):
    """A server-side path outside the directories the operator allows."""

    hint = "give a path under one of RLM_ALLOWED_PATHS, or upload the file instead"


class RunCancelledError(RLMError):
    """The run was cancelled before it finished; it is recorded as "cancelled"."""

    def __init__(self, run_id: str) -> None:
        super().__init__(
            f"run {run_id} was cancelled", hint=f"continue it with: rlm runs resume {run_id}"
        )
        self.run_id = run_id


class RunActiveError(RLMError):
    """The run is still executing, so it cannot be deleted."""

    def __init__(self, run_id: str) -> None:
        super().__init__(
            f"run {run_id} is still running",
            hint="cancel it first, or wait until it finishes",
        )
        self.run_id = run_id
