"""Mirroring a real run (the run service against the simulator) from the journal store into
the lakehouse: the run row, every event exactly once (also when mirrored mid-run, again and
from two threads at once) and the session's memory."""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import AsyncIterator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from rlm_engine.integrations.delta_lake import Lakehouse
from rlm_engine.integrations.delta_schemas import pyarrow
from rlm_engine.jobs.mirror import mirror_run
from rlm_engine.service.principal import Principal
from rlm_engine.service.runs import RunHandle, RunService
from rlm_engine.service.spec import RunSpec
from rlm_engine.settings import Settings
from rlm_engine.sim import CallablePolicy, SimServer
from rlm_engine.sim.policies import message_text
from rlm_engine.store import SqlStore, open_store
from rlm_engine.store.errors import RunNotFoundError
from rlm_engine.store.records import MemoryScope
from sim_support import StartSim

ALICE = Principal("alice", "a")
ASK = "```repl\na = llm_query('what is six times seven?')\nprint(a)\n```"
FINISH = "```repl\nFINAL(a)\n```"


class HeldSubCalls:
    """A root that asks one sub-call and answers with it; the sub-call waits for `release`
    (so a run can be mirrored while it runs)."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.sub_calls_started = asyncio.Event()

    async def __call__(self, messages: Sequence[dict[str, Any]]) -> str:
        if messages and message_text(messages[0]).startswith("You answer a question"):
            turns = sum(1 for m in messages if m.get("role") == "assistant")
            return [ASK, FINISH][min(turns, 1)]
        self.sub_calls_started.set()
        await self.release.wait()
        return "forty-two"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    opened = open_store(f"sqlite:///{tmp_path / 'store' / 'rlm.db'}", tmp_path / "home")
    yield opened
    opened.close()


@pytest.fixture
def lake(tmp_path: Path) -> Lakehouse:
    return Lakehouse(tmp_path / "lake")


@pytest.fixture
async def running(
    store: SqlStore, start_sim: StartSim, tmp_path: Path
) -> AsyncIterator[tuple[HeldSubCalls, RunHandle]]:
    """A run of session `s1`, held in its sub-call until `release` is set."""
    policy = HeldSubCalls()
    sim: SimServer = await start_sim(None, CallablePolicy(policy))
    home = tmp_path / "home"
    settings = Settings(
        home=home, env={"OPENAI_BASE_URL": sim.url, "OPENAI_API_KEY": "sim", "RLM_HOME": str(home)}
    )
    service = RunService(store, settings, heartbeat_s=0.2, poll_s=0.05)
    handle = await service.start(
        ALICE, "What is six times seven?", RunSpec(model="openai/m"), session="s1"
    )
    yield policy, handle
    policy.release.set()
    await service.aclose()


def change_types(lake: Lakehouse, table: str) -> list[str]:
    from deltalake import DeltaTable

    feed: Any = pyarrow().table(DeltaTable(lake.uri(table)).load_cdf(starting_version=0))
    kinds: list[str] = feed.column("_change_type").to_pylist()
    del feed
    gc.collect()
    return kinds


async def test_a_run_mirrored_mid_run_and_after_has_every_event_once(
    store: SqlStore, lake: Lakehouse, running: tuple[HeldSubCalls, RunHandle]
) -> None:
    policy, handle = running
    await policy.sub_calls_started.wait()
    # The run's first events reach the store through its writer: wait for them (bounded).
    for _ in range(500):
        if store.list_events(handle.run_id):
            break
        await asyncio.sleep(0.02)
    mirror_run(store, lake, handle.run_id, session_id="s1", user_id="a", dedupe_key="dir:t1")
    [early] = lake.read("runs")
    assert early["status"] == "running" and early["dedupe_key"] == "dir:t1"
    mirrored_early = len(lake.read("telemetry"))
    assert mirrored_early >= 1

    policy.release.set()
    result = await handle.result()
    store.memory_set(MemoryScope.session("s1"), "fact", {"answer": 42})
    mirror_run(store, lake, handle.run_id, session_id="s1", user_id="a")  # key kept

    [run] = lake.read("runs")
    assert (run["status"], run["answer"], run["stop_reason"]) == ("completed", "forty-two", "final")
    assert result.answer == "forty-two"
    assert (run["session_id"], run["user_id"], run["tenant"]) == ("s1", "a", "alice")
    assert run["dedupe_key"] == "dir:t1" and run["finished_time"] is not None
    assert run["iterations"] == 2 and run["sub_calls"] == 1

    events = store.list_events(handle.run_id)
    rows = sorted(lake.read("telemetry", where={"run_id": handle.run_id}), key=lambda r: r["seq"])
    assert [r["seq"] for r in rows] == [e.seq for e in events]
    assert [r["event_type"] for r in rows] == [e.type for e in events]
    assert rows[0]["event_type"] == "run_started" and rows[-1]["event_type"] == "run_finished"
    assert [json.loads(r["payload_json"]) for r in rows] == [
        json.loads(json.dumps(e.body, sort_keys=True, default=str)) for e in events
    ]
    assert rows[-1]["time"] == pytest.approx(events[-1].ts, abs=1e-5)
    # Mid-run rows were not rewritten: the second call only inserted the new seqs.
    kinds = change_types(lake, "telemetry")
    assert kinds.count("insert") == len(events) and "update_postimage" not in kinds
    assert len(events) > mirrored_early

    [memory] = lake.read("memory")
    assert (memory["scope"], memory["key"]) == ("session:s1", "fact")
    assert json.loads(memory["value_json"]) == {"answer": 42}


async def test_mirroring_again_and_concurrently_changes_no_row_count(
    store: SqlStore, lake: Lakehouse, running: tuple[HeldSubCalls, RunHandle]
) -> None:
    policy, handle = running
    policy.release.set()
    await handle.result()
    run_id = handle.run_id

    def mirror() -> None:
        mirror_run(store, lake, run_id, session_id="s1", user_id="a")

    with ThreadPoolExecutor(max_workers=2) as pool:
        for done in [pool.submit(mirror), pool.submit(mirror)]:
            done.result()
    count = len(store.list_events(run_id))
    assert len(lake.read("telemetry")) == count and len(lake.read("runs")) == 1
    version = lake.version("telemetry")
    mirror()
    assert lake.version("telemetry") == version  # nothing new: no telemetry commit
    assert len(lake.read("telemetry")) == count and len(lake.read("runs")) == 1


def test_mirroring_an_unknown_run_is_a_not_found_error(store: SqlStore, lake: Lakehouse) -> None:
    with pytest.raises(RunNotFoundError, match="nope"):
        mirror_run(store, lake, "nope", session_id=None, user_id=None)
    assert lake.read("runs") == []
