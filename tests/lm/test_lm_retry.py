"""Retry policy, retry budget, circuit breakers and RetryingModel, with injected time."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Sequence

import pytest
from lm_support import SleepRecorder

from rlm_engine.errors import ProviderError, ProviderErrorKind
from rlm_engine.lm import (
    BreakerBoard,
    CircuitBreaker,
    RetryBudget,
    RetryingModel,
    RetryNotice,
    RetryPolicy,
    StreamDone,
    TextDelta,
)
from rlm_engine.lm.base import StreamEvent
from rlm_engine.types import Completion, Message, ModelSettings

ASK = [Message("user", "q")]


class UpperBoundRandom(random.Random):
    """Always draws the top of the range, exposing the backoff ceiling."""

    def uniform(self, a: float, b: float) -> float:
        return b


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def error(kind: ProviderErrorKind, retry_after_s: float | None = None) -> ProviderError:
    return ProviderError(f"fake {kind}", kind=kind, provider="fake", retry_after_s=retry_after_s)


class FlakyModel:
    """Fails with the given errors, in order, then answers."""

    def __init__(self, failures: Sequence[ProviderError], *, fail_mid_stream: bool = False):
        self.failures = list(failures)
        self.calls = 0
        self.fail_mid_stream = fail_mid_stream

    @property
    def name(self) -> str:
        return "fake/model"

    @property
    def provider(self) -> str:
        return "fake"

    async def complete(
        self, messages: Sequence[Message], settings: ModelSettings | None = None
    ) -> Completion:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return Completion(text="done", model=self.name, provider="fake")

    async def stream(
        self, messages: Sequence[Message], settings: ModelSettings | None = None
    ) -> AsyncIterator[StreamEvent]:
        self.calls += 1
        if self.failures and not self.fail_mid_stream:
            raise self.failures.pop(0)
        yield TextDelta(type="text_delta", text="part")
        if self.failures:
            raise self.failures.pop(0)
        yield StreamDone(type="done", completion=Completion("part", self.name, provider="fake"))


def test_full_jitter_bounds_and_cap() -> None:
    policy = RetryPolicy(base_delay_s=0.5, max_delay_s=8.0)
    top = UpperBoundRandom()
    assert [policy.backoff_s(i, top) for i in range(6)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
    rng = random.Random(7)
    for retry_index in range(8):
        ceiling = min(8.0, 0.5 * 2**retry_index)
        draws = [policy.backoff_s(retry_index, rng) for _ in range(200)]
        assert all(0.0 <= d <= ceiling for d in draws)
        # Full jitter spreads over the whole range rather than clustering at the top.
        assert min(draws) < ceiling * 0.2


def test_retry_after_is_used_and_capped() -> None:
    policy = RetryPolicy(retry_after_cap_s=30.0)
    rng = UpperBoundRandom()
    assert policy.delay_s(error("rate_limit", retry_after_s=4.0), 0, rng) == 4.0
    assert policy.delay_s(error("rate_limit", retry_after_s=300.0), 0, rng) == 30.0
    assert policy.delay_s(error("server"), 2, rng) == 2.0


async def test_retries_until_success(sleeps: SleepRecorder) -> None:
    inner = FlakyModel([error("server"), error("timeout"), error("connection")])
    notices: list[RetryNotice] = []
    model = RetryingModel(inner, sleep=sleeps, rng=UpperBoundRandom(), on_retry=notices.append)
    completion = await model.complete(ASK)
    assert completion.text == "done"
    assert inner.calls == 4
    assert sleeps.waits == [0.5, 1.0, 2.0]
    assert [n.attempt for n in notices] == [1, 2, 3]
    assert notices[0].error.kind == "server"


async def test_gives_up_after_max_attempts(sleeps: SleepRecorder) -> None:
    inner = FlakyModel([error("server")] * 5)
    model = RetryingModel(inner, policy=RetryPolicy(max_attempts=3), sleep=sleeps)
    with pytest.raises(ProviderError, match="fake server"):
        await model.complete(ASK)
    assert inner.calls == 3
    assert len(sleeps.waits) == 2


@pytest.mark.parametrize(
    "kind", ["bad_request", "auth", "not_found", "context_length", "content_filter"]
)
async def test_request_errors_are_not_retried(
    kind: ProviderErrorKind, sleeps: SleepRecorder
) -> None:
    inner = FlakyModel([error(kind)])
    model = RetryingModel(inner, sleep=sleeps)
    with pytest.raises(ProviderError) as caught:
        await model.complete(ASK)
    assert caught.value.kind == kind
    assert inner.calls == 1
    assert sleeps.waits == []


async def test_budget_is_shared_and_exhaustion_raises_last_error(sleeps: SleepRecorder) -> None:
    budget = RetryBudget(total_s=5.0)
    first = RetryingModel(
        FlakyModel([error("rate_limit", retry_after_s=3.0)]), budget=budget, sleep=sleeps
    )
    assert (await first.complete(ASK)).text == "done"
    assert budget.spent_s == 3.0 and budget.remaining_s == 2.0

    second_inner = FlakyModel([error("rate_limit", retry_after_s=3.0)])
    second = RetryingModel(second_inner, budget=budget, sleep=sleeps)
    with pytest.raises(ProviderError) as caught:
        await second.complete(ASK)
    assert caught.value.kind == "rate_limit"
    assert second_inner.calls == 1
    assert sleeps.waits == [3.0]
    assert budget.spent_s == 3.0


def test_breaker_opens_rejects_then_half_opens_and_closes() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("fake", failure_threshold=3, cooldown_s=10.0, clock=clock)
    for _ in range(2):
        breaker.before_call()
        breaker.record_failure()
    assert breaker.state == "closed"
    breaker.before_call()
    breaker.record_failure()
    assert breaker.state == "open"

    with pytest.raises(ProviderError) as caught:
        breaker.before_call()
    assert caught.value.kind == "circuit_open"
    assert not caught.value.retryable
    assert caught.value.retry_after_s == pytest.approx(10.0)

    clock.now += 10.0
    assert breaker.state == "half_open"
    breaker.before_call()  # the single trial
    with pytest.raises(ProviderError, match="circuit open"):
        breaker.before_call()  # rejected while the trial is in flight
    breaker.record_success()
    assert breaker.state == "closed"
    assert breaker.consecutive_failures == 0
    breaker.before_call()


def test_failed_trial_reopens_for_another_cooldown() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("fake", failure_threshold=1, cooldown_s=5.0, clock=clock)
    breaker.record_failure()
    clock.now += 5.0
    breaker.before_call()
    breaker.record_failure()
    assert breaker.state == "open"
    clock.now += 4.9
    assert breaker.state == "open"
    clock.now += 0.1
    assert breaker.state == "half_open"


def test_cancelled_trial_frees_the_slot() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("fake", failure_threshold=1, cooldown_s=1.0, clock=clock)
    breaker.record_failure()
    clock.now += 1.0
    breaker.before_call()
    breaker.release()
    breaker.before_call()  # a new trial is admitted
    assert breaker.state == "half_open"


async def test_retrying_model_feeds_breaker_and_fails_fast_when_open(
    sleeps: SleepRecorder,
) -> None:
    clock = FakeClock()
    board = BreakerBoard(failure_threshold=2, cooldown_s=30.0, clock=clock)
    inner = FlakyModel([error("server")] * 10)
    model = RetryingModel(inner, breaker=board.get("fake"), sleep=sleeps)
    with pytest.raises(ProviderError) as caught:
        await model.complete(ASK)
    # Two failures open the circuit; the third attempt is refused without a call.
    assert caught.value.kind == "circuit_open"
    assert inner.calls == 2
    assert board.states() == {"fake": "open"}

    clock.now += 30.0
    inner.failures.clear()
    assert (await model.complete(ASK)).text == "done"
    assert board.states() == {"fake": "closed"}


async def test_request_errors_do_not_open_the_breaker(sleeps: SleepRecorder) -> None:
    breaker = CircuitBreaker("fake", failure_threshold=1)
    model = RetryingModel(FlakyModel([error("bad_request")]), breaker=breaker, sleep=sleeps)
    with pytest.raises(ProviderError):
        await model.complete(ASK)
    assert breaker.state == "closed"


async def test_stream_is_retried_before_first_event(sleeps: SleepRecorder) -> None:
    inner = FlakyModel([error("server")])
    model = RetryingModel(inner, sleep=sleeps)
    events = [event async for event in model.stream(ASK)]
    assert [type(e).__name__ for e in events] == ["TextDelta", "StreamDone"]
    assert inner.calls == 2
    assert len(sleeps.waits) == 1


async def test_stream_is_not_retried_after_first_event(sleeps: SleepRecorder) -> None:
    inner = FlakyModel([error("server")], fail_mid_stream=True)
    model = RetryingModel(inner, sleep=sleeps)
    seen: list[StreamEvent] = []
    with pytest.raises(ProviderError, match="fake server"):
        async for event in model.stream(ASK):
            seen.append(event)
    assert len(seen) == 1 and isinstance(seen[0], TextDelta)
    assert inner.calls == 1
    assert sleeps.waits == []


def test_policy_rejects_zero_attempts() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
