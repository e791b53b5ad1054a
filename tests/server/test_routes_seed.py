"""The seed's surface as written: sessions, a blocking execute, a streamed execute, a
run's tree and the usage stats."""

from __future__ import annotations

import json
from pathlib import Path

from routes_support import answering, api_settings, running_api, sse_events

from rlm_engine.sim.policies import CallablePolicy
from sim_support import StartSim


async def test_session_execute_tree_and_stats(start_sim: StartSim, tmp_path: Path) -> None:
    sim = await start_sim(policy=CallablePolicy(answering("'forty-two'")))
    async with running_api(api_settings(tmp_path / "home", sim.url)) as api, api.client() as c:
        created = await c.post("/api/sessions", json={"name": "my-doc", "context": "x" * 5000})
        assert created.status_code == 200, created.text
        session_id = created.json()["session_id"]
        assert created.json()["context_bytes"] == 5000

        done = await c.post(
            "/api/execute", json={"session_id": session_id, "user_query": "What is it?"}
        )
        assert done.status_code == 200, done.text
        body = done.json()
        assert body["answer"] == "forty-two"
        assert body["status"] == "completed"
        assert body["stop_reason"] == "final"
        assert set(body) == {"execution_id", "answer", "status", "stop_reason", "usage", "cost_usd"}
        assert body["usage"]["input_tokens"] > 0

        tree = await c.get(f"/api/executions/{body['execution_id']}/tree")
        assert tree.status_code == 200
        assert tree.json()["run"]["run_id"] == body["execution_id"]
        assert any(n["kind"] == "root_turn" for n in tree.json()["nodes"])

        stats = (await c.get("/api/stats")).json()
        assert stats["totals"]["calls"] >= 1
        assert session_id in stats["by_session"]


async def test_execute_stream_sends_the_run_events_in_order(
    start_sim: StartSim, tmp_path: Path
) -> None:
    sim = await start_sim(policy=CallablePolicy(answering("'streamed'")))
    async with running_api(api_settings(tmp_path / "home", sim.url)) as api, api.client() as c:
        session_id = (
            await c.post("/api/sessions", json={"name": "doc", "context": "some text"})
        ).json()["session_id"]
        reply = await c.post(
            "/api/execute/stream", json={"session_id": session_id, "user_query": "go"}
        )
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/event-stream")
    events = sse_events(reply.text)
    types = [e["event"] for e in events]
    assert types[0] == "run_started" and types[-1] == "run_finished"
    seqs = [int(e["id"]) for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    finished = json.loads(events[-1]["data"])
    assert finished["type"] == "run_finished"
    assert finished["stop_reason"] == "final"
    finals = [json.loads(e["data"]) for e in events if e["event"] == "final"]
    assert [f["answer"] for f in finals] == ["streamed"]


async def test_execute_in_an_unknown_session_is_404(start_sim: StartSim, tmp_path: Path) -> None:
    sim = await start_sim(policy=CallablePolicy(answering("'x'")))
    async with running_api(api_settings(tmp_path / "home", sim.url)) as api, api.client() as c:
        reply = await c.post("/api/execute", json={"session_id": "ses_nope", "user_query": "q"})
    assert reply.status_code == 404
    assert reply.json()["error"]["type"] == "SessionNotFoundError"
