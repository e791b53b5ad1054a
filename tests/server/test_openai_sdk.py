"""The official OpenAI SDK against the real server: an RLM answer over a 5 MB context,
streaming and not, with the whole tree's usage; the run is a normal run of the API."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import openai
from openai_support import MODEL, OpenAIServer, oracle_server
from server_support import Launch, StartSimThread


def _client(served: OpenAIServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=served.base_url, api_key=served.key, max_retries=0, timeout=300)


def _check_run(served: OpenAIServer, run_id: str, answer: str, usage: Any) -> None:
    run = served.run(run_id)
    assert run["status"] == "completed" and run["answer"] == answer, run
    assert run["model"] == "sim/sim-model"
    assert usage.prompt_tokens == run["usage"]["input_tokens"] > 0
    assert usage.completion_tokens == run["usage"]["output_tokens"] > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    # All of the tree: the root's turns and every sub-call.
    assert run["usage"]["sub_calls"] > 0


def test_the_sdk_gets_an_answer_over_5mb_with_usage(
    launch: Launch, sim_thread: StartSimThread, tmp_path: Path
) -> None:
    served = oracle_server(launch, sim_thread, tmp_path)
    task = served.task
    with _client(served) as client:
        completion = client.chat.completions.create(
            model=MODEL,
            messages=[
                {"role": "system", "content": task.context},
                {"role": "user", "content": task.question},
            ],
            extra_body={"max_iterations": 6},
        )
        assert completion.choices[0].message.content == task.answer
        assert completion.choices[0].finish_reason == "stop"
        assert completion.model == MODEL
        assert completion.id.startswith("chatcmpl-")
        run_id = completion.id.removeprefix("chatcmpl-")
        assert completion.usage is not None
        _check_run(served, run_id, task.answer, completion.usage)
        listed = client.models.list()
        assert [m.id for m in listed.data] == ["rlm/sim/sim-model"]
    with served.server.client(served.key) as http:
        runs = http.get("/v1/runs").json()["runs"]
    assert [r["run_id"] for r in runs] == [run_id]
    assert runs[0]["question"] == task.question


def test_the_sdk_streams_progress_then_the_answer_over_a_5mb_file(
    launch: Launch, sim_thread: StartSimThread, tmp_path: Path
) -> None:
    served = oracle_server(launch, sim_thread, tmp_path)
    task = served.task
    data = base64.b64encode(task.context.encode("utf-8")).decode("ascii")
    with _client(served) as client:
        stream = client.chat.completions.create(
            model=MODEL,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "file", "file": {"file_data": data, "filename": "haystack.txt"}},
                        {"type": "text", "text": task.question},
                    ],
                }
            ],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
    ids = {c.id for c in chunks}
    assert len(ids) == 1
    run_id = ids.pop().removeprefix("chatcmpl-")
    with_choices = [c for c in chunks if c.choices]
    reasoning = "".join(
        getattr(c.choices[0].delta, "reasoning_content", None) or "" for c in with_choices
    )
    content = "".join(c.choices[0].delta.content or "" for c in with_choices)
    assert content == task.answer
    assert "Iteration 1 started" in reasoning and "Iteration 2 finished" in reasoning
    assert "sub-calls so far" in reasoning
    # Progress comes first, the answer after it, then the finish and the usage.
    first_content = next(i for i, c in enumerate(with_choices) if c.choices[0].delta.content)
    assert all(
        not (getattr(c.choices[0].delta, "reasoning_content", None))
        for c in with_choices[first_content:]
    )
    assert with_choices[-1].choices[0].finish_reason == "stop"
    assert not chunks[-1].choices and chunks[-1].usage is not None
    _check_run(served, run_id, task.answer, chunks[-1].usage)
