"""The OpenAI routes see only the caller's tenant: another tenant's session (by
`session_id` or `file_id`) is 404 and its contents never reach the answer; a completion
is a run of the key's tenant only."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest
from openai_support import MODEL
from server_support import Launch, StartSimThread, create_key, server_env

from rlm_engine.sim import EchoPolicy

A_CONTEXT = "alpha context text 5e1d, for alpha's eyes only"


def test_another_tenants_session_is_not_found(
    launch: Launch, sim_thread: StartSimThread, tmp_path: Path
) -> None:
    sim = sim_thread(None, EchoPolicy("```repl\nFINAL('seen')\n```"))
    env = server_env(tmp_path / "home", sim.url)
    a_key, b_key = create_key(env, "alpha"), create_key(env, "beta")
    server = launch(env)
    with server.client(a_key) as a:
        made = a.post("/v1/sessions", json={"name": "alpha", "context": A_CONTEXT})
        assert made.status_code in (200, 201), made.text
        session = made.json()["session_id"]
    question = [{"role": "user", "content": "what is in it?"}]
    by_file = [
        {
            "role": "user",
            "content": [
                {"type": "file", "file": {"file_id": session}},
                {"type": "text", "text": "what is in it?"},
            ],
        }
    ]
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key=b_key, max_retries=0) as b:
        for messages, extra in ((question, {"session_id": session}), (by_file, {})):
            with pytest.raises(openai.NotFoundError) as missing:
                b.chat.completions.create(model=MODEL, messages=messages, extra_body=extra)  # type: ignore[arg-type]
            body = missing.value.response.text
            assert A_CONTEXT not in body and "alpha" not in body
            assert missing.value.response.json()["error"]["code"] == "not_found"
        models = b.models.list()
        assert [m.id for m in models.data] == [MODEL]
        mine = b.chat.completions.create(model=MODEL, messages=question)  # type: ignore[arg-type]
    run_id = mine.id.removeprefix("chatcmpl-")
    with server.client(a_key) as a:
        assert a.get(f"/v1/runs/{run_id}").status_code == 404
        assert a.get("/v1/runs").json()["runs"] == []
    with server.client(b_key) as b_http:
        assert b_http.get(f"/v1/runs/{run_id}").json()["status"] == "completed"
