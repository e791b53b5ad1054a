"""LiteLLM and DSPy, as their users configure them for any OpenAI-compatible server,
get an RLM answer over a 5 MB context from the real server, with usage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from openai_support import MODEL, OpenAIServer, oracle_server
from server_support import Launch, StartSimThread


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """LiteLLM's price map from the package, DSPy's cache in the test's directory: neither
    reaches the internet (the network guard stays on to prove it)."""
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    monkeypatch.setenv("DSPY_CACHEDIR", str(tmp_path / "dspy-cache"))


def _messages(served: OpenAIServer) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": served.task.context},
        {"role": "user", "content": served.task.question},
    ]


def _run_of(served: OpenAIServer, completion_id: str) -> dict[str, Any]:
    assert completion_id.startswith("chatcmpl-")
    run = served.run(completion_id.removeprefix("chatcmpl-"))
    assert run["status"] == "completed" and run["answer"] == served.task.answer
    return run


@pytest.mark.usefixtures("offline")
def test_litellm_gets_an_answer_streaming_and_not(
    launch: Launch, sim_thread: StartSimThread, tmp_path: Path
) -> None:
    import litellm

    served = oracle_server(launch, sim_thread, tmp_path)
    common: dict[str, Any] = {
        "model": f"openai/{MODEL}",
        "api_base": served.base_url,
        "api_key": served.key,
        "messages": _messages(served),
        "timeout": 300,
    }
    reply: Any = litellm.completion(**common)
    assert reply.choices[0].message.content == served.task.answer
    run = _run_of(served, reply.id)
    assert reply.usage.prompt_tokens == run["usage"]["input_tokens"] > 0
    assert reply.usage.completion_tokens == run["usage"]["output_tokens"] > 0

    chunks: list[Any] = list(
        litellm.completion(**common, stream=True, stream_options={"include_usage": True})
    )
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert content == served.task.answer
    reasoning = "".join(
        getattr(c.choices[0].delta, "reasoning_content", None) or "" for c in chunks if c.choices
    )
    assert "Iteration 1 started" in reasoning
    usage = [getattr(c, "usage", None) for c in chunks]
    totals = [u for u in usage if u is not None and u.total_tokens]
    streamed = _run_of(served, chunks[0].id)
    assert totals and totals[-1].prompt_tokens == streamed["usage"]["input_tokens"]
    assert streamed["run_id"] != run["run_id"]


@pytest.mark.usefixtures("offline")
def test_dspy_lm_gets_an_answer(launch: Launch, sim_thread: StartSimThread, tmp_path: Path) -> None:
    import dspy

    served = oracle_server(launch, sim_thread, tmp_path)
    lm = dspy.LM(
        f"openai/{MODEL}", api_base=served.base_url, api_key=served.key, cache=False, timeout=300
    )
    request = dspy.lm15.Request(
        model=f"openai/{MODEL}",
        system=served.task.context,
        messages=(dspy.lm15.Message.user(served.task.question),),
    )
    response = lm(request)
    assert response.text == served.task.answer
    assert response.id is not None
    run = _run_of(served, response.id)
    assert response.usage.input_tokens == run["usage"]["input_tokens"] > 0
    assert response.usage.output_tokens == run["usage"]["output_tokens"] > 0
