"""Retries with full-jitter backoff, a per-run retry budget and per-provider circuit breakers.

Only retryable ``ProviderError`` kinds are retried (rate limits, server errors, timeouts,
connection failures, malformed replies); a request the provider rejected (bad request,
auth, not found, context length, content filter) would fail the same way again.
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass

from rlm_engine.errors import ProviderError
from rlm_engine.lm.base import LanguageModel, StreamDone, StreamEvent
from rlm_engine.lm.circuit import BreakerBoard, CircuitBreaker, CircuitState
from rlm_engine.lm.streaming import open_stream
from rlm_engine.lm.wrapper import ModelWrapper
from rlm_engine.types import Completion, Message, ModelSettings

__all__ = [
    "BreakerBoard",
    "CircuitBreaker",
    "CircuitState",
    "RetryBudget",
    "RetryNotice",
    "RetryPolicy",
    "RetryingModel",
]

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long to wait between attempts.

    ``max_attempts`` counts the first call. The wait before retry ``n`` (from 0) is
    ``uniform(0, min(max_delay_s, base_delay_s * 2**n))``, unless the provider said how long
    to wait (``retry_after_s``), which is honoured up to ``retry_after_cap_s``.
    """

    max_attempts: int = 4
    base_delay_s: float = 0.5
    max_delay_s: float = 8.0
    retry_after_cap_s: float = 30.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")

    def backoff_s(self, retry_index: int, rng: random.Random) -> float:
        """Full-jitter exponential backoff for retry number ``retry_index`` (from 0)."""
        ceiling = min(self.max_delay_s, self.base_delay_s * 2**retry_index)
        return rng.uniform(0.0, ceiling)

    def delay_s(self, error: ProviderError, retry_index: int, rng: random.Random) -> float:
        """The wait before retrying after ``error``."""
        if error.retry_after_s is not None:
            return min(max(0.0, error.retry_after_s), self.retry_after_cap_s)
        return self.backoff_s(retry_index, rng)


class RetryBudget:
    """Seconds of retry waiting allowed in one run, shared by all its model calls.

    A retry whose wait does not fit in what is left is not taken: the last error is raised.
    """

    def __init__(self, total_s: float) -> None:
        self.total_s = total_s
        self._spent = 0.0
        self._lock = threading.Lock()

    @property
    def spent_s(self) -> float:
        """Seconds of waiting already reserved."""
        return self._spent

    @property
    def remaining_s(self) -> float:
        """Seconds of waiting still allowed."""
        return max(0.0, self.total_s - self._spent)

    def try_spend(self, seconds: float) -> bool:
        """Reserve ``seconds`` of waiting; ``False`` (and nothing spent) if they do not fit."""
        with self._lock:
            if self._spent + seconds > self.total_s:
                return False
            self._spent += seconds
            return True


# The retry budget of the run in progress. A model is built once and shared by many runs
# (and by concurrent ones), so the engine sets each run's budget here; asyncio tasks copy
# it, which gives every run, with its sub-calls and child RLMs, a budget of its own.
RUN_RETRY_BUDGET: ContextVar[RetryBudget | None] = ContextVar("rlm_run_retry_budget", default=None)


@dataclass(frozen=True, slots=True)
class RetryNotice:
    """Told to ``on_retry`` before each wait: what failed, which attempt, how long we wait."""

    model: str
    error: ProviderError
    attempt: int
    delay_s: float


class RetryingModel(ModelWrapper):
    """Wraps any ``LanguageModel`` with retries, a retry budget and a circuit breaker.

    Streams are retried only until their first event arrives; after that a failure is
    raised, since the caller has already seen part of the reply.
    """

    def __init__(
        self,
        inner: LanguageModel,
        *,
        policy: RetryPolicy | None = None,
        budget: RetryBudget | None = None,
        breaker: CircuitBreaker | None = None,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        on_retry: Callable[[RetryNotice], None] | None = None,
    ) -> None:
        super().__init__(inner)
        self.policy = policy or RetryPolicy()
        self.budget = budget
        self.breaker = breaker
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._on_retry = on_retry

    def _admit(self) -> None:
        if self.breaker is not None:
            self.breaker.before_call()

    def _succeeded(self) -> None:
        if self.breaker is not None:
            self.breaker.record_success()

    def _failed(self, error: ProviderError) -> None:
        if self.breaker is None:
            return
        if error.retryable:
            self.breaker.record_failure()
        else:
            # The provider answered; the request itself was at fault.
            self.breaker.record_success()

    def _abandoned(self) -> None:
        if self.breaker is not None:
            self.breaker.release()

    async def _wait_or_raise(self, error: ProviderError, retry_index: int) -> None:
        """Sleep before the next attempt, or re-raise ``error`` when no retry is allowed."""
        if not error.retryable or retry_index + 1 >= self.policy.max_attempts:
            raise error
        delay = self.policy.delay_s(error, retry_index, self._rng)
        budget = self.budget or RUN_RETRY_BUDGET.get()
        if budget is not None and not budget.try_spend(delay):
            raise error
        if self._on_retry is not None:
            self._on_retry(RetryNotice(self.name, error, retry_index + 1, delay))
        await self._sleep(delay)

    async def complete(
        self, messages: Sequence[Message], settings: ModelSettings | None = None
    ) -> Completion:
        """The inner model's completion, retried on retryable errors."""
        retry_index = 0
        while True:
            self._admit()
            try:
                completion = await self.inner.complete(messages, settings)
            except ProviderError as error:
                self._failed(error)
                await self._wait_or_raise(error, retry_index)
                retry_index += 1
                continue
            except BaseException:
                self._abandoned()
                raise
            self._succeeded()
            return completion

    async def _first_event(
        self, messages: Sequence[Message], settings: ModelSettings | None
    ) -> tuple[StreamEvent, AsyncGenerator[StreamEvent, None]]:
        retry_index = 0
        while True:
            self._admit()
            events = open_stream(self.inner, messages, settings)
            try:
                first = await anext(events)
            except StopAsyncIteration:
                self._abandoned()
                raise ProviderError(
                    f"{self.name}: the stream ended without any event",
                    kind="malformed",
                    provider=self.provider,
                ) from None
            except ProviderError as error:
                self._failed(error)
                await self._wait_or_raise(error, retry_index)
                retry_index += 1
                continue
            except BaseException:
                self._abandoned()
                raise
            return first, events

    async def stream(
        self, messages: Sequence[Message], settings: ModelSettings | None = None
    ) -> AsyncIterator[StreamEvent]:
        """The inner model's stream, retried until its first event arrives."""
        first, events = await self._first_event(messages, settings)
        finished = False
        try:
            yield first
            finished = isinstance(first, StreamDone)
            async for event in events:
                yield event
                finished = finished or isinstance(event, StreamDone)
        except ProviderError as error:
            self._failed(error)
            raise
        finally:
            if finished:
                self._succeeded()
            else:
                self._abandoned()
            await events.aclose()
