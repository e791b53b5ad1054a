"""The detail routes: a node's journaled reply (and request, when journaled as messages)
cut to max_chars, a window of one cell's output by artifact id, the tree without outputs,
an offline replay that reproduces the answer; another tenant's ids are 404."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
from routes_support import api_settings, is_root, running_api, slow_root, wait_terminal

from rlm_engine.service.details import cell_key, parse_messages
from rlm_engine.sim.policies import CallablePolicy
from rlm_engine.store.records import CellKey, ModelCall
from sim_support import StartSim

CELL_OUTPUT = "hello-out " * 30
FIRST_REPLY = f"Let me look.\n```repl\nprint({CELL_OUTPUT!r})\nx = llm_query('sub?')\n```"
LAST_REPLY = "The cell printed it.\n```repl\nFINAL('done')\n```"


def one_cell_then_final(messages: list[dict[str, Any]]) -> str:
    if not is_root(messages):
        return "sub says ok"
    return LAST_REPLY if "hello-out" in json.dumps(messages) else FIRST_REPLY


async def _finished_run(c: httpx.AsyncClient) -> str:
    reply = await c.post("/v1/runs", json={"question": "What?", "context": "some text"})
    assert reply.status_code == 202, reply.text
    run_id = str(reply.json()["run_id"])
    run = await wait_terminal(c, run_id)
    assert run["status"] == "completed" and run["answer"] == "done", run
    return run_id


async def test_node_detail_serves_the_reply_cut_to_max_chars(
    start_sim: StartSim, tmp_path: Path
) -> None:
    sim = await start_sim(policy=CallablePolicy(one_cell_then_final))
    async with running_api(api_settings(tmp_path / "home", sim.url)) as api, api.client() as c:
        run_id = await _finished_run(c)
        tree = (await c.get(f"/v1/runs/{run_id}/tree")).json()
        turns = [n["node_id"] for n in tree["nodes"] if n["kind"] == "root_turn"]
        subs = [n["node_id"] for n in tree["nodes"] if n["kind"] == "llm"]
        assert len(turns) == 2 and len(subs) == 1, tree["nodes"]

        whole = (await c.get(f"/v1/runs/{run_id}/nodes/{turns[0]}")).json()
        assert whole["node"]["node_id"] == turns[0] and whole["node"]["kind"] == "root_turn"
        assert whole["response"] == FIRST_REPLY
        assert whole["response_chars"] == len(FIRST_REPLY) and not whole["truncated"]
        # A first root turn's prompt: the system prompt and the question.
        roles = [m["role"] for m in whole["messages"]]
        assert roles == ["system", "user"] and "What?" in whole["messages"][1]["content"]
        # A later turn keeps only what is new since the root's last reply: the output of
        # its cell, not the whole conversation again.
        later = (await c.get(f"/v1/runs/{run_id}/nodes/{turns[1]}")).json()
        assert [m["role"] for m in later["messages"]] == ["user"]
        assert "hello-out" in later["messages"][0]["content"]

        cut = (await c.get(f"/v1/runs/{run_id}/nodes/{turns[0]}", params={"max_chars": 12})).json()
        assert cut["response"] == FIRST_REPLY[:12] and cut["truncated"]
        assert cut["response_chars"] == len(FIRST_REPLY) and cut["max_chars"] == 12

        # A node id with slashes is one path parameter.
        sub = (await c.get(f"/v1/runs/{run_id}/nodes/{subs[0]}")).json()
        assert sub["node"]["node_id"] == subs[0] and sub["response"] == "sub says ok"
        assert [m["role"] for m in sub["messages"]] == ["user"]  # the cell's prompt

        missing = await c.get(f"/v1/runs/{run_id}/nodes/r/99")
        assert missing.status_code == 404
        assert missing.json()["error"]["type"] == "NodeNotFoundError"
        assert (await c.get(f"/v1/runs/{run_id}/nodes/r/0?max_chars=0")).status_code == 422

        # A request journaled as chat messages (long: kept in the blob store) comes back
        # as messages, each cut to max_chars.
        long_prompt = "p" * 100_000
        request = json.dumps(
            [{"role": "system", "content": "be brief"}, {"role": "user", "content": long_prompt}]
        )
        api.services.store.record_model_call(
            ModelCall(run_id, "r/1/7", "llm", "h", "reply", parent_id="r/1", request=request)
        )
        shown = (await c.get(f"/v1/runs/{run_id}/nodes/r/1/7?max_chars=50")).json()
        assert shown["request"] is None and shown["request_chars"] == len(request)
        assert shown["messages"] == [
            {"role": "system", "content": "be brief", "chars": 8},
            {"role": "user", "content": "p" * 50, "chars": 100_000},
        ]
        assert shown["truncated"] and shown["response"] == "reply"


async def test_cell_detail_windows_one_cells_output(start_sim: StartSim, tmp_path: Path) -> None:
    sim = await start_sim(policy=CallablePolicy(one_cell_then_final))
    async with running_api(api_settings(tmp_path / "home", sim.url)) as api, api.client() as c:
        run_id = await _finished_run(c)
        full = (await c.get(f"/v1/runs/{run_id}/tree")).json()
        bare = (await c.get(f"/v1/runs/{run_id}/tree", params={"outputs": "false"})).json()
        printed = next(cell for cell in full["cells"] if cell["output"])
        assert printed["output"] == CELL_OUTPUT + "\n"
        assert printed["output_chars"] == len(CELL_OUTPUT) + 1
        assert [cell["output"] for cell in bare["cells"]] == [None] * len(full["cells"])
        assert [cell["output_chars"] for cell in bare["cells"]] == [
            cell["output_chars"] for cell in full["cells"]
        ]
        assert bare["nodes"] == full["nodes"]

        artifact = printed["artifact_id"]
        assert "/" in artifact  # the node id's slashes travel in the path as they are
        base = f"/v1/runs/{run_id}/cells/{artifact}"
        first = (await c.get(base, params={"limit": 25})).json()
        assert first["cell"]["artifact_id"] == artifact and first["cell"]["output"] is None
        assert first["cell"]["code"] == printed["code"]
        assert first["output"] == printed["output"][:25] and first["next_offset"] == 25
        assert first["output_chars"] == printed["output_chars"]
        rest = (await c.get(base, params={"offset": 25, "limit": 100_000})).json()
        assert first["output"] + rest["output"] == printed["output"]
        assert rest["next_offset"] is None and rest["offset"] == 25

        for wrong in (f"{run_id}:r/1:9:0", "other:r/1:1:0", f"{run_id}:r/1:x:0", "nonsense"):
            reply = await c.get(f"/v1/runs/{run_id}/cells/{wrong}")
            assert reply.status_code == 404, (wrong, reply.text)
            assert reply.json()["error"]["type"] == "CellNotFoundError"
        assert (await c.get(base, params={"offset": -1})).status_code == 422
        stored = api.services.store.get_cell(CellKey(run_id, printed["node_id"], 1, 0))
        assert stored is not None and stored.artifact_id == artifact


async def test_replay_reproduces_the_recorded_answer_offline(
    start_sim: StartSim, tmp_path: Path
) -> None:
    sim = await start_sim(policy=CallablePolicy(one_cell_then_final))
    async with running_api(api_settings(tmp_path / "home", sim.url)) as api, api.client() as c:
        run_id = await _finished_run(c)
        calls = len(sim.requests)
        events = (await c.get(f"/v1/runs/{run_id}")).json()["last_event_seq"]
        reply = await c.post(f"/v1/runs/{run_id}/replay")
        assert reply.status_code == 200, reply.text
        body = reply.json()
        assert body["matched"] and body["answer"] == body["recorded_answer"] == "done"
        assert body["stop_reason"] == "final" and body["iterations"] == 2
        assert body["error"] is None
        assert len(sim.requests) == calls  # offline: no model call
        assert (await c.get(f"/v1/runs/{run_id}")).json()["last_event_seq"] == events

        assert (await c.post("/v1/runs/0000000000000000/replay")).status_code == 404


async def test_a_replay_the_journal_cannot_carry_did_not_match(
    start_sim: StartSim, tmp_path: Path
) -> None:
    sim = await start_sim(policy=CallablePolicy(slow_root))
    async with running_api(api_settings(tmp_path / "home", sim.url)) as api, api.client() as c:
        reply = await c.post("/v1/runs", json={"question": "What?", "context": "some text"})
        run_id = reply.json()["run_id"]
        while not api.services.runs.executing(run_id) or not sim.requests:
            await asyncio.sleep(0.02)
        assert (await c.post(f"/v1/runs/{run_id}/cancel")).status_code == 200
        assert (await wait_terminal(c, run_id))["status"] == "cancelled"
        # The root's first reply was never journaled: an offline replay cannot go on.
        body = (await c.post(f"/v1/runs/{run_id}/replay")).json()
        assert not body["matched"] and body["recorded_answer"] is None, body
        assert body["stop_reason"] == "error" and body["answer"] == "", body
        assert "ReplayExhausted" in body["stop_detail"], body


async def test_another_tenants_nodes_and_cells_are_404(start_sim: StartSim, tmp_path: Path) -> None:
    sim = await start_sim(policy=CallablePolicy(one_cell_then_final))
    async with running_api(api_settings(tmp_path / "home", sim.url)) as api:
        a_key, b_key = api.key("tenant-a"), api.key("tenant-b")
        async with api.client(a_key) as a, api.client(b_key) as b:
            run_id = await _finished_run(a)
            cell = next(x for x in (await a.get(f"/v1/runs/{run_id}/tree")).json()["cells"])
            paths = (
                f"/v1/runs/{run_id}/nodes/r/0",
                f"/v1/runs/{run_id}/cells/{cell['artifact_id']}",
                f"/v1/runs/{run_id}/tree?outputs=false",
            )
            for path in paths:
                assert (await a.get(path)).status_code == 200, path
                denied = await b.get(path)
                assert denied.status_code == 404, path
                assert denied.json()["error"]["type"] == "RunNotFoundError"
                assert "hello-out" not in denied.text
            assert (await b.post(f"/v1/runs/{run_id}/replay")).status_code == 404


def test_messages_are_read_only_from_chat_message_json() -> None:
    assert parse_messages('[{"role": "user", "content": "hi"}]') == [("user", "hi")]
    assert parse_messages(
        '{"messages": [{"role": "user", "content": [{"type": "text", "text": "a"}, "b"]}]}'
    ) == [("user", "a\nb")]
    for other in ("plain text", "[]", "[1, 2]", '[{"content": "no role"}]', '{"a": 1}', "3"):
        assert parse_messages(other) is None, other


def test_artifact_ids_name_a_cell_of_their_own_run_only() -> None:
    assert cell_key("run1", "run1:r/1/3:2:0") == CellKey("run1", "r/1/3", 2, 0)
    assert cell_key("run1", CellKey("run1", "r~1/2", 4, 1).artifact_id) == CellKey(
        "run1", "r~1/2", 4, 1
    )
    for wrong in ("run2:r/1:1:0", "run1:r/1:1", "run1::1:0", "run1:r/1:-1:0", "run1"):
        assert cell_key("run1", wrong) is None, wrong
