"""The OpenAI adapter through the real ``openai`` SDK against the simulator on loopback."""

from __future__ import annotations

import asyncio
import math

import pytest
from lm_support import SleepRecorder

from rlm_engine.errors import ProviderError
from rlm_engine.lm import (
    RetryingModel,
    RetryPolicy,
    StreamDone,
    TextDelta,
    aclose_model,
    build_model,
    resolve_model,
)
from rlm_engine.lm.openai import OpenAIChatModel
from rlm_engine.sim import EchoPolicy, ScriptedPolicy, SimConfig
from rlm_engine.types import Message, ModelSettings
from sim_support import StartSim

PROMPT = [
    Message("system", "You are terse."),
    Message("user", "What is the answer to everything?"),
]
PROMPT_CHARS = sum(len(m.content) for m in PROMPT)


TRANSPORT = "direct"


@pytest.fixture(autouse=True, params=["direct", "sdk"])
def transport(request: pytest.FixtureRequest) -> str:
    """Every test here runs over both the lean HTTP path and the SDK's request path."""
    global TRANSPORT
    TRANSPORT = request.param
    return TRANSPORT


def sim_model(url: str) -> OpenAIChatModel:
    env = {"OPENAI_BASE_URL": url, "RLM_OPENAI_TRANSPORT": TRANSPORT}
    model = resolve_model("openai/sim-model", env=env)
    assert isinstance(model, OpenAIChatModel)
    return model


async def test_complete_returns_reply_usage_and_canonical_name(start_sim: StartSim) -> None:
    sim = await start_sim(policy=ScriptedPolicy(["forty-two"]))
    model = sim_model(sim.url)
    completion = await model.complete(PROMPT)
    await model.aclose()

    assert completion.text == "forty-two"
    assert completion.model == "openai/sim-model"
    assert completion.provider == "openai"
    assert completion.finish_reason == "stop"
    assert completion.usage.input_tokens == math.ceil(PROMPT_CHARS / 4)
    assert completion.usage.output_tokens == math.ceil(len("forty-two") / 4)
    assert completion.usage.requests == 1
    assert completion.latency_s > 0
    record = sim.requests[0]
    assert record.model == "sim-model"
    assert record.message_count == 2
    assert record.prompt_chars == PROMPT_CHARS
    assert record.messages[0] == {"role": "system", "content": "You are terse."}
    assert record.status == 200 and not record.streamed


async def test_settings_reach_the_server(start_sim: StartSim) -> None:
    sim = await start_sim(policy=ScriptedPolicy(["x" * 400]))
    model = sim_model(sim.url)
    completion = await model.complete(PROMPT, ModelSettings(max_output_tokens=10))
    await model.aclose()

    assert completion.finish_reason == "length"
    assert completion.text == "x" * 40


async def test_stream_yields_deltas_then_done_with_usage(start_sim: StartSim) -> None:
    reply = "The answer is forty-two, of course."
    sim = await start_sim(SimConfig(stream_chunk_chars=8), ScriptedPolicy([reply]))
    model = sim_model(sim.url)
    events = [event async for event in model.stream(PROMPT)]
    await model.aclose()

    deltas = [e.text for e in events if isinstance(e, TextDelta)]
    assert len(deltas) == math.ceil(len(reply) / 8)
    assert "".join(deltas) == reply
    done = events[-1]
    assert isinstance(done, StreamDone)
    assert done.completion.text == reply
    assert done.completion.usage.input_tokens == math.ceil(PROMPT_CHARS / 4)
    assert done.completion.usage.output_tokens == math.ceil(len(reply) / 4)
    assert sim.requests[0].streamed


async def test_rate_limit_waits_for_retry_after(start_sim: StartSim, sleeps: SleepRecorder) -> None:
    sim = await start_sim(SimConfig(fault_script=("429",), retry_after_s=3), EchoPolicy())
    model = RetryingModel(sim_model(sim.url), sleep=sleeps)
    completion = await model.complete(PROMPT)
    await aclose_model(model)

    assert sleeps.waits == [3.0]
    assert completion.text == PROMPT[-1].content
    assert [r.status for r in sim.requests] == [429, 200]


async def test_rate_limit_error_carries_retry_after(start_sim: StartSim) -> None:
    sim = await start_sim(SimConfig(fault_script=("429",), retry_after_s=2.5))
    model = sim_model(sim.url)
    with pytest.raises(ProviderError) as caught:
        await model.complete(PROMPT)
    await model.aclose()
    assert caught.value.kind == "rate_limit"
    assert caught.value.status == 429
    assert caught.value.retry_after_s == pytest.approx(2.5)


async def test_server_error_then_success(start_sim: StartSim, sleeps: SleepRecorder) -> None:
    sim = await start_sim(SimConfig(fault_script=("500",)), ScriptedPolicy(["ok"]))
    model = RetryingModel(sim_model(sim.url), sleep=sleeps)
    completion = await model.complete(PROMPT)
    await aclose_model(model)

    assert completion.text == "ok"
    assert len(sleeps.waits) == 1
    assert 0.0 <= sleeps.waits[0] <= RetryPolicy().base_delay_s
    assert [r.status for r in sim.requests] == [500, 200]


@pytest.mark.parametrize("fault", ["malformed", "empty_choices"])
async def test_unusable_body_is_malformed(start_sim: StartSim, fault: str) -> None:
    sim = await start_sim(SimConfig(fault_script=(fault,)))  # type: ignore[arg-type]
    model = sim_model(sim.url)
    with pytest.raises(ProviderError) as caught:
        await model.complete(PROMPT)
    await model.aclose()
    assert caught.value.kind == "malformed"
    assert caught.value.retryable


async def test_malformed_stream_is_malformed(start_sim: StartSim) -> None:
    sim = await start_sim(SimConfig(fault_script=("malformed",)))
    model = sim_model(sim.url)
    with pytest.raises(ProviderError) as caught:
        _ = [event async for event in model.stream(PROMPT)]
    await model.aclose()
    assert caught.value.kind == "malformed"


async def test_malformed_body_is_retried(start_sim: StartSim, sleeps: SleepRecorder) -> None:
    sim = await start_sim(SimConfig(fault_script=("malformed",)), ScriptedPolicy(["fine"]))
    model = RetryingModel(sim_model(sim.url), sleep=sleeps)
    completion = await model.complete(PROMPT)
    await aclose_model(model)
    assert completion.text == "fine"
    assert len(sleeps.waits) == 1


async def test_content_filter_is_typed_and_not_retried(
    start_sim: StartSim, sleeps: SleepRecorder
) -> None:
    sim = await start_sim(SimConfig(fault_script=("content_filter",)))
    model = RetryingModel(sim_model(sim.url), sleep=sleeps)
    with pytest.raises(ProviderError) as caught:
        await model.complete(PROMPT)
    await aclose_model(model)

    assert caught.value.kind == "content_filter"
    assert caught.value.status == 400
    assert sleeps.waits == []
    assert len(sim.requests) == 1


async def test_context_length_is_typed_and_not_retried(
    start_sim: StartSim, sleeps: SleepRecorder
) -> None:
    sim = await start_sim(SimConfig(context_window_tokens=5))
    model = RetryingModel(sim_model(sim.url), sleep=sleeps)
    with pytest.raises(ProviderError) as caught:
        await model.complete([Message("user", "word " * 100)])
    await aclose_model(model)

    assert caught.value.kind == "context_length"
    assert sleeps.waits == []
    assert len(sim.requests) == 1


async def test_hanging_server_times_out(start_sim: StartSim) -> None:
    sim = await start_sim(SimConfig(fault_script=("timeout",)))
    model = sim_model(sim.url)
    with pytest.raises(ProviderError) as caught:
        await model.complete(PROMPT, ModelSettings(timeout_s=0.3))
    await model.aclose()
    assert caught.value.kind == "timeout"


async def test_wrong_key_is_auth_error(start_sim: StartSim) -> None:
    sim = await start_sim(SimConfig(api_key="right-key"))
    model = resolve_model(
        "openai/sim-model",
        env={
            "OPENAI_BASE_URL": sim.url,
            "OPENAI_API_KEY": "wrong-key",
            "RLM_OPENAI_TRANSPORT": TRANSPORT,
        },
    )
    with pytest.raises(ProviderError) as caught:
        await model.complete(PROMPT)
    await aclose_model(model)
    assert caught.value.kind == "auth"
    assert not caught.value.retryable


async def test_unreachable_server_is_connection_error(start_sim: StartSim) -> None:
    sim = await start_sim()
    url = sim.url
    await sim.stop()
    model = sim_model(url)
    with pytest.raises(ProviderError) as caught:
        await model.complete(PROMPT)
    await model.aclose()
    assert caught.value.kind == "connection"


async def test_build_model_prices_retries_and_streams(
    start_sim: StartSim,
) -> None:
    sim = await start_sim(SimConfig(fault_script=("500",)), ScriptedPolicy(["a", "b"]))
    model = build_model(
        "openai:sim-model",
        env={"OPENAI_BASE_URL": sim.url, "RLM_OPENAI_TRANSPORT": TRANSPORT},
        retry_policy=RetryPolicy(base_delay_s=0.001, max_delay_s=0.001),
    )
    first = await model.complete(PROMPT)
    events = [event async for event in model.stream(PROMPT)]
    await aclose_model(model)

    assert first.text == "a"
    assert first.cost_usd is None  # no price is known for a simulator model
    done = events[-1]
    assert isinstance(done, StreamDone) and done.completion.text == "b"
    assert [r.status for r in sim.requests] == [500, 200, 200]


async def test_three_hundred_concurrent_requests_complete(start_sim: StartSim) -> None:
    sim = await start_sim(SimConfig(ttft_s=0.5), EchoPolicy(prefix="re: "))
    model = sim_model(sim.url)
    prompts = [[Message("user", f"question {i}")] for i in range(300)]
    completions = await asyncio.gather(*(model.complete(p) for p in prompts))
    await model.aclose()

    assert [c.text for c in completions] == [f"re: question {i}" for i in range(300)]
    assert len(sim.requests) == 300
    # Sequential handling would take 150 s; a high peak shows they overlapped.
    assert sim.peak_in_flight >= 50
