"""Each run gets its own retry-time budget, shared by all its model calls."""

from __future__ import annotations

from collections.abc import Sequence

from rlm_engine import RLM
from rlm_engine.errors import ProviderError
from rlm_engine.lm.retry import RetryingModel, RetryPolicy
from rlm_engine.lm.scripted import ScriptedModel
from rlm_engine.types import Completion, Message, ModelSettings


class AlwaysBusy:
    name = "test/busy"
    provider = "test"

    async def complete(
        self, messages: Sequence[Message], settings: ModelSettings | None = None
    ) -> Completion:
        raise ProviderError("busy", kind="rate_limit", provider="test", retry_after_s=0.4)


def test_retry_budget_is_per_run_and_stops_retrying_when_spent() -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    sub = RetryingModel(AlwaysBusy(), policy=RetryPolicy(max_attempts=10), sleep=sleep)
    replies = ["```repl\nprint(llm_query('x'))\n```", "FINAL(done)"]
    root = ScriptedModel(lambda m: replies[min(sum(x.role == "assistant" for x in m), 1)])
    with RLM(root, sub, retry_budget_s=1.0) as rlm:
        first = rlm.run("q")
        after_first = list(slept)
        rlm.run("q")
    # 0.4 s + 0.4 s fit in the 1 s budget; a third wait would not, so the error surfaces.
    assert after_first == [0.4, 0.4]
    assert slept == [0.4, 0.4, 0.4, 0.4]
    assert "rate_limit" in root.calls[1][-1].content or "busy" in root.calls[1][-1].content
    assert first.answer == "done"
