"""The simulator over raw HTTP: routes, SSE, keep-alive, limits, latency, faults, the log."""

from __future__ import annotations

import asyncio
import json
import math
import time
from typing import Any

import httpx
import pytest

from rlm_engine.sim import CallablePolicy, EchoPolicy, ScriptedPolicy, SimConfig, SimServer
from rlm_engine.sim.faults import FaultPlan
from sim_support import StartSim

USER = {"role": "user", "content": "ping"}


def chat_body(**extra: Any) -> dict[str, Any]:
    return {"model": "sim-model", "messages": [{"role": "system", "content": "sys"}, USER], **extra}


async def post_chat(client: httpx.AsyncClient, sim: SimServer, **extra: Any) -> httpx.Response:
    return await client.post(f"{sim.url}/chat/completions", json=chat_body(**extra))


async def raw_chat(port: int, payload: bytes) -> int:
    """One request on its own connection, without any HTTP library; returns the status."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: sim\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
    )
    writer.write(head.encode() + payload)
    await writer.drain()
    data = await reader.read()
    writer.close()
    return int(data.split(b" ", 2)[1])


async def test_chat_completion_json_and_log(start_sim: StartSim) -> None:
    sim = await start_sim(policy=ScriptedPolicy(["pong!"]))
    async with httpx.AsyncClient() as client:
        response = await post_chat(client, sim)
    body = response.json()

    assert response.status_code == 200
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "pong!"}
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["prompt_tokens"] == math.ceil(len("sysping") / 4)
    assert body["usage"]["completion_tokens"] == math.ceil(len("pong!") / 4)
    assert body["usage"]["total_tokens"] == 2 + 2

    (record,) = sim.requests
    assert (record.model, record.message_count, record.prompt_chars) == ("sim-model", 2, 7)
    assert record.messages[1] == USER
    assert (record.status, record.streamed, record.fault) == (200, False, None)
    assert record.time <= time.time()


async def test_streaming_sse_with_usage_chunk(start_sim: StartSim) -> None:
    sim = await start_sim(SimConfig(stream_chunk_chars=4), ScriptedPolicy(["abcdefghij"]))
    async with (
        httpx.AsyncClient() as client,
        client.stream(
            "POST",
            f"{sim.url}/chat/completions",
            json=chat_body(stream=True, stream_options={"include_usage": True}),
        ) as response,
    ):
        assert response.headers["content-type"] == "text/event-stream"
        lines = [line async for line in response.aiter_lines() if line.startswith("data: ")]

    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "abcdefghij"
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finishes[-1] == "stop"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] == 3
    assert sim.requests[0].streamed


async def test_stream_without_include_usage_has_no_usage_chunk(start_sim: StartSim) -> None:
    sim = await start_sim(policy=ScriptedPolicy(["hey"]))
    async with httpx.AsyncClient() as client:
        response = await post_chat(client, sim, stream=True)
    events = [line for line in response.text.splitlines() if line.startswith("data: {")]
    assert all("usage" not in json.loads(line[6:]) for line in events)


async def test_models_route_and_errors(start_sim: StartSim) -> None:
    sim = await start_sim(SimConfig(models=("a", "b")))
    async with httpx.AsyncClient() as client:
        models = await client.get(f"{sim.url}/models")
        missing = await client.get(f"{sim.url}/nothing")
        wrong_method = await client.get(f"{sim.url}/chat/completions")
        not_json = await client.post(f"{sim.url}/chat/completions", content=b"{oops")
        no_messages = await client.post(f"{sim.url}/chat/completions", json={"model": "m"})

    assert [m["id"] for m in models.json()["data"]] == ["a", "b"]
    assert missing.status_code == 404
    assert wrong_method.status_code == 405
    assert not_json.status_code == 400 and "not valid JSON" in not_json.json()["error"]["message"]
    assert no_messages.status_code == 400


async def test_keep_alive_serves_several_requests_per_connection(start_sim: StartSim) -> None:
    sim = await start_sim(policy=EchoPolicy())
    reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
    payload = json.dumps(chat_body()).encode()
    request = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: sim\r\nContent-Length: {len(payload)}\r\n\r\n"
    ).encode() + payload
    statuses: list[bytes] = []
    for _ in range(3):
        writer.write(request)
        await writer.drain()
        status_line = await reader.readline()
        statuses.append(status_line.split(b" ")[1])
        headers: dict[str, str] = {}
        while (line := await reader.readline()) != b"\r\n":
            name, _, value = line.decode().partition(":")
            headers[name.lower()] = value.strip()
        await reader.readexactly(int(headers["content-length"]))
        assert headers["connection"] == "keep-alive"
    writer.close()
    assert statuses == [b"200"] * 3


async def test_concurrency_cap_returns_429_with_retry_after(start_sim: StartSim) -> None:
    sim = await start_sim(SimConfig(ttft_s=1.0, max_concurrent=2, retry_after_s=2), EchoPolicy())
    async with httpx.AsyncClient() as client:
        responses = await asyncio.gather(*(post_chat(client, sim) for _ in range(5)))

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 200, 429, 429, 429]
    limited = [r for r in responses if r.status_code == 429]
    assert all(r.headers["retry-after"] == "2" for r in limited)
    assert limited[0].json()["error"]["code"] == "rate_limit_exceeded"
    assert sim.peak_in_flight == 2


async def test_latency_model_is_honoured(start_sim: StartSim) -> None:
    # 800 characters are 200 tokens; at 1000 tokens/s they take 0.2 s after a 0.3 s TTFT.
    sim = await start_sim(SimConfig(ttft_s=0.3, tokens_per_s=1000), ScriptedPolicy(["x" * 800] * 2))
    async with httpx.AsyncClient() as client:
        started = time.perf_counter()
        await post_chat(client, sim)
        plain = time.perf_counter() - started

        started = time.perf_counter()
        async with client.stream(
            "POST", f"{sim.url}/chat/completions", json=chat_body(stream=True)
        ) as response:
            first_content: float | None = None
            async for line in response.aiter_lines():
                if '"content": "x' in line and first_content is None:
                    first_content = time.perf_counter() - started
        streamed = time.perf_counter() - started

    # Lower bounds only: a slow machine may take longer, never less.
    assert plain >= 0.45
    assert first_content is not None and first_content >= 0.28
    assert streamed >= 0.45


async def test_thousand_requests_in_flight(start_sim: StartSim) -> None:
    sim = await start_sim(SimConfig(ttft_s=1.0), EchoPolicy())
    payload = json.dumps(chat_body()).encode()
    statuses = await asyncio.gather(*(raw_chat(sim.port, payload) for _ in range(1000)))
    assert statuses == [200] * 1000
    assert len(sim.requests) == 1000
    # One-second replies to a thousand requests finish in this test only if they overlap.
    assert sim.peak_in_flight >= 500


async def test_fault_script_then_normal(start_sim: StartSim) -> None:
    config = SimConfig(fault_script=("500", None, "content_filter", "context_length"))
    sim = await start_sim(config, EchoPolicy())
    async with httpx.AsyncClient() as client:
        responses = [await post_chat(client, sim) for _ in range(5)]
    assert [r.status_code for r in responses] == [500, 200, 400, 400, 200]
    assert responses[2].json()["error"]["code"] == "content_filter"
    assert responses[3].json()["error"]["code"] == "context_length_exceeded"
    assert [r.fault for r in sim.requests] == [
        "500",
        None,
        "content_filter",
        "context_length",
        None,
    ]


async def test_broken_replies_do_not_consume_policy_replies(start_sim: StartSim) -> None:
    config = SimConfig(fault_script=("malformed", "empty_choices"))
    sim = await start_sim(config, ScriptedPolicy(["only reply"]))
    async with httpx.AsyncClient() as client:
        malformed = await post_chat(client, sim)
        empty = await post_chat(client, sim)
        good = await post_chat(client, sim)
    with pytest.raises(json.JSONDecodeError):
        json.loads(malformed.content)
    assert empty.json()["choices"] == []
    assert good.json()["choices"][0]["message"]["content"] == "only reply"


async def test_timeout_fault_drops_the_connection(start_sim: StartSim) -> None:
    sim = await start_sim(SimConfig(fault_script=("timeout",), timeout_hang_s=0.2))
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.HTTPError):
            await post_chat(client, sim)
        assert (await post_chat(client, sim)).status_code == 200
    assert [r.status for r in sim.requests] == [None, 200]


def test_fault_rates_are_seeded_and_reproducible() -> None:
    config = SimConfig(fault_rates={"500": 0.2, "429": 0.1}, seed=42)
    plan_a, plan_b = FaultPlan(config), FaultPlan(config)
    draws_a = [plan_a.next_fault() for _ in range(2000)]
    draws_b = [plan_b.next_fault() for _ in range(2000)]
    assert draws_a == draws_b
    assert 300 <= draws_a.count("500") <= 500
    assert 120 <= draws_a.count("429") <= 280
    other_seed = FaultPlan(SimConfig(fault_rates={"500": 0.2, "429": 0.1}, seed=7))
    assert [other_seed.next_fault() for _ in range(2000)] != draws_a


def test_unknown_fault_kind_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown fault kind"):
        SimConfig(fault_script=("explode",))  # type: ignore[arg-type]


async def test_max_tokens_truncates_with_length_finish(start_sim: StartSim) -> None:
    sim = await start_sim(policy=ScriptedPolicy(["y" * 100]))
    async with httpx.AsyncClient() as client:
        body = (await post_chat(client, sim, max_tokens=5)).json()
    assert body["choices"][0]["message"]["content"] == "y" * 20
    assert body["choices"][0]["finish_reason"] == "length"


async def test_policies_see_model_and_messages(start_sim: StartSim) -> None:
    seen: list[list[dict[str, Any]]] = []

    async def answer(messages: list[dict[str, Any]]) -> str:
        seen.append(messages)
        return f"{len(messages)} messages"

    sim = await start_sim(policy=CallablePolicy(answer))
    async with httpx.AsyncClient() as client:
        body = (await post_chat(client, sim)).json()
    assert body["choices"][0]["message"]["content"] == "2 messages"
    assert seen[0][1] == USER


async def test_policy_failure_is_reported_as_server_error(start_sim: StartSim) -> None:
    def broken(messages: list[dict[str, Any]]) -> str:
        raise KeyError("no such reply")

    sim = await start_sim(policy=CallablePolicy(broken))
    async with httpx.AsyncClient() as client:
        response = await post_chat(client, sim)
    assert response.status_code == 500
    assert "policy failed" in response.json()["error"]["message"]


async def test_an_exhausted_script_is_a_client_error_not_worth_retrying(
    start_sim: StartSim,
) -> None:
    sim = await start_sim(policy=ScriptedPolicy([]))
    async with httpx.AsyncClient() as client:
        response = await post_chat(client, sim)
    assert response.status_code == 400
    error = response.json()["error"]
    assert "no reply left" in error["message"] and error["code"] == "script_exhausted"


async def test_api_key_is_checked_when_configured(start_sim: StartSim) -> None:
    sim = await start_sim(SimConfig(api_key="secret"))
    async with httpx.AsyncClient() as client:
        denied = await post_chat(client, sim)
        allowed = await client.post(
            f"{sim.url}/chat/completions",
            json=chat_body(),
            headers={"Authorization": "Bearer secret"},
        )
    assert (denied.status_code, allowed.status_code) == (401, 200)


async def test_stop_cuts_in_flight_requests(start_sim: StartSim) -> None:
    sim = await start_sim(SimConfig(ttft_s=30.0))
    async with httpx.AsyncClient() as client:
        pending = asyncio.create_task(post_chat(client, sim))
        while sim.in_flight == 0:
            await asyncio.sleep(0.01)
        await sim.stop()
        with pytest.raises(httpx.HTTPError):
            await pending
