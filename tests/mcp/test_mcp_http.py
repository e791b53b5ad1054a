"""The MCP server mounted on `rlm serve` at /mcp (streamable HTTP), driven by the
official MCP client SDK with an API key: tools, progress, the answer as a run of the
key's tenant; paths outside RLM_ALLOWED_PATHS refused; no key, no MCP."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import httpx
import httpx2
from mcp.client.streamable_http import streamable_http_client
from mcp_support import TOOLS, ProgressLog, error_text, haystack, result_of
from server_support import create_key, is_root, server_env, wait_for

from mcp import Client
from rlm_engine.sim import CallablePolicy, OraclePolicy, OracleRegistry


def _client(url: str, key: str | None) -> Client:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    http = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(120))
    return Client(streamable_http_client(url, http_client=http), read_timeout_seconds=120)


async def test_mcp_over_http_answers_as_the_keys_tenant(
    launch: Any, sim_thread: Any, tmp_path: Path
) -> None:
    registry = OracleRegistry()
    hay = haystack(tmp_path, registry)
    sim = sim_thread(None, OraclePolicy(registry))
    env = server_env(tmp_path / "home", sim.url, RLM_ALLOWED_PATHS=str(hay.root))
    key = create_key(env, "t1")
    other = create_key(env, "t2")
    server = launch(env)
    url = f"{server.url}/mcp"

    async with _client(url, key) as client:
        listed = await client.list_tools()
        assert {t.name for t in listed.tools} == TOOLS
        progress = ProgressLog()
        result = await client.call_tool(
            "rlm_ask",
            {"question": hay.question, "paths": [str(hay.path)]},
            progress_callback=progress,
        )
        done = result_of(result)
        assert done["answer"] == hay.answer and done["status"] == "completed"
        assert done["sub_calls"] > 0
        progress.check()
        refused = await client.call_tool(
            "rlm_ask", {"question": "and this?", "paths": [str(tmp_path / "home")]}
        )
        assert "outside the allowed roots" in error_text(refused)

    # The run belongs to the key's tenant: visible through the run API with that key only.
    with server.client(key) as http:
        run = http.get(f"/v1/runs/{done['run_id']}")
        assert run.status_code == 200 and run.json()["answer"] == hay.answer
    with server.client(other) as http:
        assert http.get(f"/v1/runs/{done['run_id']}").status_code == 404
    async with _client(url, other) as client:
        hidden = await client.call_tool("rlm_runs", {"run_id": done["run_id"]})
        assert f"no run with id {done['run_id']!r}" in error_text(hidden)

    with httpx.Client(timeout=30) as http:
        denied = http.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
        assert denied.status_code == 401
        assert denied.headers["WWW-Authenticate"] == "Bearer"


async def test_rlm_resume_continues_a_cancelled_run_with_progress(
    launch: Any, sim_thread: Any, tmp_path: Path
) -> None:
    registry = OracleRegistry()
    hay = haystack(tmp_path, registry)
    oracle = OraclePolicy(registry)
    gate = threading.Event()

    async def held(messages: list[Any]) -> str:
        # Sub-calls wait for the gate: the run is cancelled while it waits.
        if not is_root(messages):
            while not gate.is_set():
                await asyncio.sleep(0.05)
        return oracle("sim/sim-model", messages)

    sim = sim_thread(None, CallablePolicy(held))
    env = server_env(tmp_path / "home", sim.url, RLM_ALLOWED_PATHS=str(hay.root))
    key = create_key(env, "t1")
    server = launch(env)
    async with _client(f"{server.url}/mcp", key) as client:
        asked = asyncio.create_task(
            client.call_tool("rlm_ask", {"question": hay.question, "paths": [str(hay.path)]})
        )
        with server.client(key) as http:

            def running() -> str | None:
                runs = http.get("/v1/runs").json()["runs"]
                return runs[0]["run_id"] if runs and runs[0]["status"] == "running" else None

            run_id = await asyncio.to_thread(wait_for, running, "the run to start")
            cancelled = await asyncio.to_thread(http.post, f"/v1/runs/{run_id}/cancel")
            assert cancelled.status_code == 200, cancelled.text
        stopped = result_of(await asyncio.wait_for(asked, 60))
        assert stopped["run_id"] == run_id and stopped["status"] == "cancelled"
        assert stopped["answer"] is None

        gate.set()
        progress = ProgressLog()
        resumed = await client.call_tool(
            "rlm_resume", {"run_id": run_id}, progress_callback=progress
        )
        done = result_of(resumed)
        assert done["run_id"] == run_id
        assert done["status"] == "completed" and done["answer"] == hay.answer
        messages = [m or "" for _, m in progress.seen]
        assert messages[0] == f"Resuming run {run_id}."
        assert any("sub-calls so far" in m for m in messages), messages
