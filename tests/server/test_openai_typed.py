"""`response_format` with a JSON schema: the run finishes with SUBMIT fields of that
schema, returned as the JSON content; an answer that does not match is an error."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import openai
import pytest
from openai_support import MODEL, is_root, submit_policy
from server_support import Launch, StartSimThread, create_key, server_env

from rlm_engine.sim import CallablePolicy
from rlm_engine.sim.policies import message_text

SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
    "required": ["city", "population"],
    "additionalProperties": False,
}
FORMAT = {"type": "json_schema", "json_schema": {"name": "city", "schema": SCHEMA, "strict": True}}


def _ask(
    launch: Launch, sim_thread: StartSimThread, tmp_path: Path, fields: dict[str, object]
) -> tuple[Any, openai.OpenAI, list[dict[str, str]]]:
    sim = sim_thread(None, submit_policy(fields))
    env = server_env(tmp_path / "home", sim.url)
    key = create_key(env, "t1")
    server = launch(env)
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0, timeout=120)
    messages = [
        {"role": "system", "content": "Paris has 2,100,000 inhabitants."},
        {"role": "user", "content": "Which city, and how many live there?"},
    ]
    return sim, client, messages


def test_a_json_schema_response_format_gives_typed_submit_output(
    launch: Launch, sim_thread: StartSimThread, tmp_path: Path
) -> None:
    sim, client, messages = _ask(
        launch, sim_thread, tmp_path, {"city": "Paris", "population": 2100000}
    )
    with client:
        completion = client.chat.completions.create(
            model=MODEL,
            messages=messages,  # type: ignore[arg-type]
            response_format=FORMAT,  # type: ignore[arg-type]
        )
    content = completion.choices[0].message.content
    assert content is not None
    assert json.loads(content) == {"city": "Paris", "population": 2100000}
    # The root model was told to SUBMIT fields of exactly this schema.
    first = sim.requests[0]
    assert "SUBMIT(" in message_text(first.messages[0])
    assert json.dumps(SCHEMA) in "\n".join(message_text(m) for m in first.messages)


def test_submit_fields_outside_the_schema_go_back_to_the_root_to_fix(
    launch: Launch, sim_thread: StartSimThread, tmp_path: Path
) -> None:
    # The root first SUBMITs fields of the wrong types; the engine refuses them with the
    # schema's complaint, and the root's next turn gives fields that fit.
    fixed = {"city": "Paris", "population": 2100000}

    def reply(messages: list[Any]) -> str:
        if not is_root(messages):
            return "unused"
        turns = sum(1 for m in messages if m.get("role") == "assistant")
        if turns == 0:
            return '```repl\nSUBMIT(city=75, population="many")\n```'
        told = message_text(messages[-1])
        assert "SUBMIT was rejected" in told and "population" in told
        args = ", ".join(f"{k}={json.dumps(v)}" for k, v in fixed.items())
        return f"```repl\nSUBMIT({args})\n```"

    sim = sim_thread(None, CallablePolicy(reply))
    env = server_env(tmp_path / "home", sim.url)
    key = create_key(env, "t1")
    server = launch(env)
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0, timeout=120)
    with client:
        completion = client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "Which city, and how many live there?"}],
            response_format=FORMAT,  # type: ignore[arg-type]
        )
    content = completion.choices[0].message.content
    assert content is not None and json.loads(content) == fixed
    assert sum(1 for r in sim.requests if is_root(r.messages)) == 2


def test_a_root_that_never_fits_the_schema_gets_no_answer(
    launch: Launch, sim_thread: StartSimThread, tmp_path: Path
) -> None:
    _, client, messages = _ask(launch, sim_thread, tmp_path, {"city": 75, "population": "many"})
    with client, pytest.raises(openai.APIStatusError) as failed:
        client.chat.completions.create(
            model=MODEL,
            messages=messages,  # type: ignore[arg-type]
            response_format=FORMAT,  # type: ignore[arg-type]
            extra_body={"max_iterations": 3},
        )
    assert failed.value.status_code >= 500
    assert "without an answer" in failed.value.response.json()["error"]["message"]


def test_a_schema_that_is_not_a_json_schema_of_an_object_is_refused(
    launch: Launch, sim_thread: StartSimThread, tmp_path: Path
) -> None:
    sim, client, messages = _ask(launch, sim_thread, tmp_path, {"city": "Paris"})
    bad = {"type": "json_schema", "json_schema": {"name": "n", "schema": {"type": "string"}}}
    with client, pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(
            model=MODEL,
            messages=messages,  # type: ignore[arg-type]
            response_format=bad,  # type: ignore[arg-type]
        )
    assert "object" in refused.value.response.json()["error"]["message"]
    assert sim.requests == []  # refused before any run was made
