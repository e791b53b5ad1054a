"""Circuit breakers: stop calling a provider that keeps failing, probe it after a pause."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Literal

from rlm_engine.errors import ProviderError

CircuitState = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    """Opens after ``failure_threshold`` consecutive retryable failures.

    While open, calls are rejected at once with ``ProviderError(kind="circuit_open")``.
    After ``cooldown_s`` one trial call is let through (half-open): its success closes the
    circuit, its failure opens it for another cooldown. Other calls are rejected while the
    trial is in flight.
    """

    def __init__(
        self,
        provider: str,
        *,
        failure_threshold: int = 5,
        cooldown_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        self.provider = provider
        self.failure_threshold = failure_threshold
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_in_flight = False
        # Sub-calls may run on several threads' event loops; state changes stay atomic.
        self._lock = threading.Lock()

    @property
    def state(self) -> CircuitState:
        """``closed``, ``open`` or ``half_open`` (cooldown over, trial allowed)."""
        with self._lock:
            return self._state()

    @property
    def consecutive_failures(self) -> int:
        """Retryable failures since the last success."""
        return self._failures

    def _state(self) -> CircuitState:
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at >= self.cooldown_s:
            return "half_open"
        return "open"

    def before_call(self) -> None:
        """Admit a call or raise ``circuit_open``; in half-open state admits one trial."""
        with self._lock:
            state = self._state()
            if state == "closed":
                return
            if state == "half_open" and not self._trial_in_flight:
                self._trial_in_flight = True
                return
            assert self._opened_at is not None
            wait = max(0.0, self.cooldown_s - (self._clock() - self._opened_at))
        raise ProviderError(
            f"{self.provider}: circuit open after {self._failures} consecutive failures; "
            f"next trial in {wait:.1f}s",
            kind="circuit_open",
            provider=self.provider,
            retry_after_s=wait,
        )

    def record_success(self) -> None:
        """The provider answered (even with a request error): close the circuit."""
        with self._lock:
            self._failures = 0
            self._opened_at = None
            self._trial_in_flight = False

    def record_failure(self) -> None:
        """A retryable failure: count it, open the circuit at the threshold or on a failed trial."""
        with self._lock:
            self._failures += 1
            if self._trial_in_flight or self._failures >= self.failure_threshold:
                self._opened_at = self._clock()
            self._trial_in_flight = False

    def release(self) -> None:
        """The admitted call ended without a verdict (e.g. cancelled): free the trial slot."""
        with self._lock:
            self._trial_in_flight = False


class BreakerBoard:
    """One ``CircuitBreaker`` per provider name, created on first use with shared settings."""

    def __init__(
        self,
        *,
        failure_threshold: int = 5,
        cooldown_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._failure_threshold = failure_threshold
        self._cooldown_s = cooldown_s
        self._clock = clock
        self._breakers: dict[str, CircuitBreaker] = {}
        self._lock = threading.Lock()

    def get(self, provider: str) -> CircuitBreaker:
        """The breaker of ``provider``."""
        with self._lock:
            breaker = self._breakers.get(provider)
            if breaker is None:
                breaker = CircuitBreaker(
                    provider,
                    failure_threshold=self._failure_threshold,
                    cooldown_s=self._cooldown_s,
                    clock=self._clock,
                )
                self._breakers[provider] = breaker
            return breaker

    def states(self) -> dict[str, CircuitState]:
        """Each known provider's circuit state, for status displays."""
        with self._lock:
            breakers = list(self._breakers.values())
        return {breaker.provider: breaker.state for breaker in breakers}
