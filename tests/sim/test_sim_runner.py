"""Running the simulator for synchronous code and as a service."""

from __future__ import annotations

import asyncio
import contextlib

import httpx
import openai
import pytest

from rlm_engine.sim import EchoPolicy, ScriptedPolicy, SimConfig, SimServer, SimServerThread, serve


def test_thread_runner_serves_the_sync_openai_client() -> None:
    with SimServerThread(SimConfig(), ScriptedPolicy(["hello from the thread"])) as sim:
        assert sim.url.startswith("http://127.0.0.1:") and sim.url.endswith("/v1")
        client = openai.OpenAI(base_url=sim.url, api_key="sim", max_retries=0)
        response = client.chat.completions.create(
            model="sim-model", messages=[{"role": "user", "content": "hi"}]
        )
        client.close()
        assert response.choices[0].message.content == "hello from the thread"
        assert response.usage is not None and response.usage.prompt_tokens == 1
        assert len(sim.requests) == 1
        url = sim.url
    # Stopped: the port no longer answers.
    with httpx.Client() as plain, pytest.raises(httpx.ConnectError):
        plain.get(f"{url}/models", timeout=1.0)


async def test_serve_runs_until_cancelled() -> None:
    ready: asyncio.Queue[SimServer] = asyncio.Queue()
    task = asyncio.create_task(
        serve("127.0.0.1", 0, policy=EchoPolicy(prefix="echo: "), on_ready=ready.put_nowait)
    )
    server = await asyncio.wait_for(ready.get(), timeout=5)
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"{server.url}/chat/completions",
            json={"model": "m", "messages": [{"role": "user", "content": "x"}]},
        )
    assert response.json()["choices"][0]["message"]["content"] == "echo: x"
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert task.cancelled()
