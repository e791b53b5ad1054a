"""Errors of the OpenAI routes in OpenAI's shape and status codes, as the SDK raises
them; the rest of the API keeps its own error body."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai_support import MODEL
from server_support import Launch, StartSimThread, create_key, server_env

from rlm_engine.sim import EchoPolicy


def _shape(error: dict[str, Any], code: str | None) -> None:
    assert set(error) == {"message", "type", "param", "code"}, error
    assert error["code"] == code and error["message"]


def test_errors_use_openai_shapes_and_statuses(
    launch: Launch, sim_thread: StartSimThread, tmp_path: Path
) -> None:
    sim = sim_thread(None, EchoPolicy())
    # A budget of zero refuses every run (429); contexts are limited to 1 kB (413).
    env = server_env(
        tmp_path / "home", sim.url, RLM_DAILY_BUDGET_USD="0", RLM_MAX_CONTEXT_BYTES="1000"
    )
    key = create_key(env, "t1")
    server = launch(env)
    base = f"{server.url}/v1"
    question = [{"role": "user", "content": "hello?"}]
    with openai.OpenAI(base_url=base, api_key="rlm_not-a-key", max_retries=0) as bad:
        with pytest.raises(openai.AuthenticationError) as denied:
            bad.chat.completions.create(model=MODEL, messages=question)  # type: ignore[arg-type]
        assert denied.value.status_code == 401
        _shape(denied.value.response.json()["error"], "invalid_api_key")
        with pytest.raises(openai.AuthenticationError):
            bad.models.list()

    with openai.OpenAI(base_url=base, api_key=key, max_retries=0) as client:
        with pytest.raises(openai.NotFoundError) as missing:
            client.chat.completions.create(model="gpt-4o", messages=question)  # type: ignore[arg-type]
        _shape(missing.value.response.json()["error"], "model_not_found")
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(model="rlm/nosuch/x", messages=question)  # type: ignore[arg-type]

        with pytest.raises(openai.RateLimitError) as limited:
            client.chat.completions.create(model=MODEL, messages=question)  # type: ignore[arg-type]
        assert int(limited.value.response.headers["Retry-After"]) >= 1
        _shape(limited.value.response.json()["error"], "rate_limit_exceeded")

        too_long = [{"role": "system", "content": "x" * 2000}, *question]
        with pytest.raises(openai.APIStatusError) as large:
            client.chat.completions.create(model=MODEL, messages=too_long)  # type: ignore[arg-type]
        assert large.value.status_code == 413
        _shape(large.value.response.json()["error"], "request_too_large")

        with pytest.raises(openai.BadRequestError) as invalid:
            client.chat.completions.create(
                model=MODEL,
                messages=question,  # type: ignore[arg-type]
                extra_body={"api_key": "sk-elsewhere"},
            )
        _shape(invalid.value.response.json()["error"], None)
        assert "credentials" in invalid.value.response.json()["error"]["message"]

    with httpx.Client(base_url=server.url, timeout=60) as http:
        headers = {"Authorization": f"Bearer {key}"}
        # A body declared larger than the server reads, refused before it is read.
        body = b"x" * (1000 + 1024 * 1024 + 1)
        declared = http.post(
            "/v1/chat/completions",
            content=body,
            headers={**headers, "Content-Type": "application/json"},
        )
        assert declared.status_code == 413
        _shape(declared.json()["error"], "request_too_large")
        # Validation errors name the parameter, with OpenAI's 400.
        no_messages = http.post("/v1/chat/completions", json={"model": MODEL}, headers=headers)
        assert no_messages.status_code == 400
        assert no_messages.json()["error"]["param"] == "messages"
        # The rest of the API is unchanged.
        other = http.get("/v1/runs/run_nope", headers=headers)
        assert other.status_code == 404
        assert other.json()["error"]["type"] == "RunNotFoundError"
        assert "hint" in other.json()["error"]
