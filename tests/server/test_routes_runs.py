"""/v1/runs: submit (202), read, list a page at a time, cancel, resume, export, tree and
delete; what a request may not set (credentials) and what the server sets (strict
sandboxes, its caps); a run's events over SSE from any sequence number; usage stats."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
from routes_support import (
    MODEL,
    answering,
    api_settings,
    is_root,
    running_api,
    sse_events,
    wait_terminal,
)

from rlm_engine.sim.policies import CallablePolicy
from sim_support import StartSim


async def _submit(c: httpx.AsyncClient, **body: Any) -> str:
    reply = await c.post("/v1/runs", json={"question": "What is it?", **body})
    assert reply.status_code == 202, reply.text
    return str(reply.json()["run_id"])


async def test_submit_read_tree_export_delete(start_sim: StartSim, tmp_path: Path) -> None:
    sim = await start_sim(policy=CallablePolicy(answering("'done'")))
    async with running_api(api_settings(tmp_path / "home", sim.url)) as api, api.client() as c:
        reply = await c.post("/v1/runs", json={"question": "What?", "context": "inline text"})
        assert reply.status_code == 202, reply.text
        accepted = reply.json()
        run_id = accepted["run_id"]
        assert accepted["status"] == "queued"
        assert reply.headers["Location"] == f"/v1/runs/{run_id}"
        assert accepted["links"]["events"] == f"/v1/runs/{run_id}/events"

        run = await wait_terminal(c, run_id)
        assert run["status"] == "completed" and run["answer"] == "done"
        assert run["model"] == MODEL and run["stop_reason"] == "final"
        assert run["session_id"] is not None  # the inline context is kept as a session
        session = (await c.get(f"/v1/sessions/{run['session_id']}")).json()
        assert session["context_bytes"] == len("inline text")

        tree = (await c.get(f"/v1/runs/{run_id}/tree")).json()
        assert tree["run"]["run_id"] == run_id
        assert [n["kind"] for n in tree["nodes"]].count("root_turn") >= 1

        notebook = await c.get(f"/v1/runs/{run_id}/export?format=ipynb")
        assert notebook.status_code == 200
        assert "cells" in notebook.json()
        lines = (await c.get(f"/v1/runs/{run_id}/export?format=jsonl")).text.splitlines()
        assert lines and all(json.loads(line) for line in lines)
        markdown = await c.get(f"/v1/runs/{run_id}/export?format=md")
        assert markdown.headers["content-type"].startswith("text/markdown")
        assert "done" in markdown.text
        assert (await c.get(f"/v1/runs/{run_id}/export?format=pdf")).status_code == 422

        assert (await c.delete(f"/v1/runs/{run_id}")).status_code == 204
        assert (await c.get(f"/v1/runs/{run_id}")).status_code == 404


async def test_server_runs_are_strict_and_capped(start_sim: StartSim, tmp_path: Path) -> None:
    sim = await start_sim(policy=CallablePolicy(answering("'ok'")))
    settings = api_settings(tmp_path / "home", sim.url, max_depth=1, execution_timeout_s=60)
    async with running_api(settings) as api, api.client() as c:
        run_id = await _submit(c, max_depth=5, max_seconds=600, sub_model="sim/sub")
        await wait_terminal(c, run_id)
        stored = api.services.store.get_run(run_id)
        assert stored is not None
        assert stored.settings["isolation"] == "strict"
        assert stored.settings["max_depth"] == 1
        assert stored.settings["max_seconds"] == 60
        assert stored.settings["sub_model"] == "sim/sub"


async def test_requests_may_not_carry_provider_settings(
    start_sim: StartSim, tmp_path: Path
) -> None:
    sim = await start_sim(policy=CallablePolicy(answering("'ok'")))
    async with running_api(api_settings(tmp_path / "home", sim.url)) as api, api.client() as c:
        for extra in ({"base_url": "http://evil"}, {"api_key": "sk-x"}, {"api_key_env": "HOME"}):
            reply = await c.post("/v1/runs", json={"question": "q", **extra})
            assert reply.status_code == 422, extra
            assert "server's settings" in reply.json()["error"]["message"]
        unknown = await c.post("/v1/runs", json={"question": "q", "flavour": "x"})
        assert unknown.status_code == 422
        both = await c.post(
            "/v1/runs", json={"question": "q", "context": "x", "session_id": "ses_1"}
        )
        assert both.status_code == 422
        assert (await c.get("/v1/runs")).json()["runs"] == []


async def test_a_run_needs_a_model(start_sim: StartSim, tmp_path: Path) -> None:
    sim = await start_sim(policy=CallablePolicy(answering("'ok'")))
    settings = api_settings(tmp_path / "home", sim.url, model=None)
    async with running_api(settings) as api, api.client() as c:
        reply = await c.post("/v1/runs", json={"question": "q"})
        assert reply.status_code == 422
        assert reply.json()["error"]["type"] == "NoModelError"
        assert "RLM_MODEL" in reply.json()["error"]["hint"]
        named = await _submit(c, model=MODEL)
        assert (await wait_terminal(c, named))["status"] == "completed"


async def test_list_pages_and_filters(start_sim: StartSim, tmp_path: Path) -> None:
    sim = await start_sim(policy=CallablePolicy(answering("'ok'")))
    async with running_api(api_settings(tmp_path / "home", sim.url)) as api, api.client() as c:
        ids = [await _submit(c) for _ in range(3)]
        for run_id in ids:
            await wait_terminal(c, run_id)
        first = (await c.get("/v1/runs", params={"limit": 2})).json()
        assert len(first["runs"]) == 2 and first["next_cursor"]
        second = (
            await c.get("/v1/runs", params={"limit": 2, "cursor": first["next_cursor"]})
        ).json()
        assert second["next_cursor"] is None
        seen = [r["run_id"] for r in first["runs"] + second["runs"]]
        assert sorted(seen) == sorted(ids) and len(set(seen)) == 3
        done = (await c.get("/v1/runs", params={"status": "completed"})).json()["runs"]
        assert len(done) == 3
        assert (await c.get("/v1/runs", params={"status": "queued"})).json()["runs"] == []
        assert (await c.get("/v1/runs", params={"limit": 201})).status_code == 422
        assert (await c.get("/v1/runs", params={"cursor": "garbage!"})).status_code == 422
        assert (await c.get("/v1/runs", params={"status": "weird"})).status_code == 422


def _slow_first_root() -> tuple[CallablePolicy, dict[str, int]]:
    """The first root call hangs (until the run is cancelled); later ones answer. The
    counts say how many root calls reached the model."""
    calls = {"root": 0}

    async def policy(messages: list[dict[str, Any]]) -> str:
        if not is_root(messages):
            return "ok"
        calls["root"] += 1
        if calls["root"] == 1:
            await asyncio.sleep(60)
        return "FINAL('resumed')"

    return CallablePolicy(policy), calls


async def test_cancel_then_resume(start_sim: StartSim, tmp_path: Path) -> None:
    policy, calls = _slow_first_root()
    sim = await start_sim(policy=policy)
    async with running_api(api_settings(tmp_path / "home", sim.url)) as api, api.client() as c:
        run_id = await _submit(c)
        deadline = asyncio.get_running_loop().time() + 30
        # Cancelled while its first root call hangs at the model (not before it is sent:
        # then the resumed run's call would be the one that hangs).
        while calls["root"] < 1:
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.05)
        assert (await c.get(f"/v1/runs/{run_id}")).json()["status"] == "running"
        cancelled = await c.post(f"/v1/runs/{run_id}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["status"] == "cancelled"
        assert (await c.post(f"/v1/runs/{run_id}/cancel")).json()["status"] == "cancelled"

        resumed = await c.post(f"/v1/runs/{run_id}/resume", json={})
        assert resumed.status_code == 202, resumed.text
        run = await wait_terminal(c, run_id)
        assert run["status"] == "completed" and run["answer"] == "resumed"
        assert run["attempt"] == 2
        again = await c.post(f"/v1/runs/{run_id}/resume")
        assert again.status_code == 409
        assert again.json()["error"]["hint"]


async def test_events_stream_from_any_sequence_number(start_sim: StartSim, tmp_path: Path) -> None:
    sim = await start_sim(policy=CallablePolicy(answering("'ok'")))
    async with running_api(api_settings(tmp_path / "home", sim.url)) as api, api.client() as c:
        run_id = await _submit(c)
        # Asked while the run is queued or running: the stream follows it to its end.
        reply = await c.get(f"/v1/runs/{run_id}/events")
        assert reply.status_code == 200
        everything = sse_events(reply.text)
        assert everything[0]["event"] == "run_started"
        assert everything[-1]["event"] == "run_finished"
        seqs = [int(e["id"]) for e in everything]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
        stored = api.services.store.list_events(run_id)
        assert [json.loads(e["data"]) for e in everything] == [s.body for s in stored]

        cut = seqs[2]
        after = sse_events((await c.get(f"/v1/runs/{run_id}/events?after={cut}")).text)
        assert [int(e["id"]) for e in after] == seqs[3:]
        header = await c.get(
            f"/v1/runs/{run_id}/events?after={seqs[0]}", headers={"Last-Event-ID": str(cut)}
        )
        assert [int(e["id"]) for e in sse_events(header.text)] == seqs[3:]
        assert (await c.get("/v1/runs/run_missing/events")).status_code == 404


async def test_stats_by_model_day_and_session(start_sim: StartSim, tmp_path: Path) -> None:
    sim = await start_sim(policy=CallablePolicy(answering("'ok'")))
    async with running_api(api_settings(tmp_path / "home", sim.url)) as api, api.client() as c:
        sid = (await c.post("/v1/sessions", json={"name": "s", "context": "c"})).json()[
            "session_id"
        ]
        await wait_terminal(c, await _submit(c, session_id=sid))
        stats = (await c.get("/v1/stats")).json()
        assert stats["totals"]["calls"] >= 1
        assert list(stats["by_model"]) == [MODEL]
        assert len(stats["by_day"]) == 1
        assert list(stats["by_session"]) == [sid]
        # The simulator's model has no known price: its cost is unknown, not zero.
        assert stats["totals"]["cost_usd"] is None
        assert stats["totals"]["unpriced_calls"] == stats["totals"]["calls"]
        later = (await c.get("/v1/stats", params={"since": 4_000_000_000})).json()
        assert later["totals"]["calls"] == 0


async def test_health_and_openapi(start_sim: StartSim, tmp_path: Path) -> None:
    sim = await start_sim(policy=CallablePolicy(answering("'ok'")))
    async with running_api(api_settings(tmp_path / "home", sim.url)) as api, api.client() as c:
        assert (await c.get("/healthz")).json() == {"status": "ok"}
        assert (await c.get("/readyz")).json() == {"status": "ok"}
        paths = (await c.get("/openapi.json")).json()["paths"]
        for path in (
            "/api/sessions",
            "/api/execute",
            "/api/execute/stream",
            "/api/executions/{execution_id}/tree",
            "/api/stats",
            "/v1/sessions",
            "/v1/sessions/{session_id}/memory/{key}",
            "/v1/runs",
            "/v1/runs/{run_id}/events",
            "/v1/runs/{run_id}/export",
            "/v1/stats",
        ):
            assert path in paths, path
        create = paths["/v1/sessions"]["post"]["requestBody"]["content"]
        assert {"application/json", "multipart/form-data", "application/octet-stream"} <= set(
            create
        )
