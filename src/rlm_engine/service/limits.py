"""What one service process allows: runs at once, context size, spend, time and depth."""

from __future__ import annotations

from dataclasses import dataclass

from rlm_engine.settings import Settings

MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class ServiceLimits:
    """Caps the service applies to every run it starts for a server (the CLI runs with
    none: a user's own machine is theirs to spend)."""

    max_concurrent_runs: int = 8
    tenant_concurrent_runs: int = 4
    max_context_bytes: int = 512 * MIB
    daily_budget_usd: float | None = None
    execution_timeout_s: float | None = None
    """Caps a run's ``max_seconds`` (the smaller wins)."""
    max_depth: int | None = None
    """Caps a run's ``max_depth`` (the smaller wins)."""

    @classmethod
    def from_settings(cls, settings: Settings) -> ServiceLimits:
        return cls(
            max_concurrent_runs=settings.max_concurrent_runs,
            tenant_concurrent_runs=settings.tenant_concurrent_runs,
            max_context_bytes=settings.max_context_bytes,
            daily_budget_usd=settings.daily_budget_usd,
            execution_timeout_s=settings.execution_timeout_s,
            max_depth=settings.max_depth,
        )
