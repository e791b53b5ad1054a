"""The run service against the simulator: a run streamed from its first event to its last,
cancelled (here, and from another process through the store), interrupted and resumed
without repeating a journaled call; and another tenant's ids are not found."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from rlm_engine.engine.result import RunResult
from rlm_engine.errors import RunInterrupted
from rlm_engine.service.errors import RunCancelledError
from rlm_engine.service.limits import ServiceLimits
from rlm_engine.service.principal import Principal
from rlm_engine.service.runs import RunService
from rlm_engine.service.sandboxes import SandboxPools
from rlm_engine.service.spec import RunSpec
from rlm_engine.settings import Settings
from rlm_engine.sim import CallablePolicy, SimServer
from rlm_engine.sim.policies import message_text
from rlm_engine.store import SqlStore, open_store
from rlm_engine.store.errors import RunNotFoundError, SessionNotFoundError
from rlm_engine.store.records import NewRun, StoredEvent
from sim_support import StartSim

ALICE = Principal("alice", "a")
BOB = Principal("bob", "b")
SPEC = RunSpec(model="openai/m")
ASK = "```repl\na = llm_query('what is six times seven?')\nprint(a)\n```"
FINISH = "```repl\nFINAL(a)\n```"


def is_root(messages: Sequence[dict[str, Any]]) -> bool:
    return bool(messages) and message_text(messages[0]).startswith("You answer a question")


def turn(messages: Sequence[dict[str, Any]]) -> int:
    return sum(1 for m in messages if m.get("role") == "assistant")


class HeldSubCalls:
    """A root that asks one sub-call and then answers with it; sub-calls wait for
    `release` (so a run can be stopped while its cell waits)."""

    def __init__(self, *, held: bool) -> None:
        self.release = asyncio.Event()
        if not held:
            self.release.set()
        self.sub_calls_started = asyncio.Event()

    async def __call__(self, messages: list[dict[str, Any]]) -> str:
        if is_root(messages):
            return [ASK, FINISH][min(turn(messages), 1)]
        self.sub_calls_started.set()
        await self.release.wait()
        return "forty-two"


def root_requests(sim: SimServer, at_turn: int) -> int:
    return sum(1 for r in sim.requests if is_root(r.messages) and turn(r.messages) == at_turn)


@pytest.fixture
def store(store_url: str, tmp_path: Path) -> Iterator[SqlStore]:
    opened = open_store(store_url, tmp_path / "home")
    yield opened
    opened.close()


def settings_for(tmp_path: Path, sim: SimServer) -> Settings:
    home = tmp_path / "home"
    return Settings(
        home=home, env={"OPENAI_BASE_URL": sim.url, "OPENAI_API_KEY": "sim", "RLM_HOME": str(home)}
    )


@pytest.fixture
async def service_for(store: SqlStore, tmp_path: Path) -> AsyncIterator[Any]:
    """Run services on the test's store; each is closed after the test."""
    made: list[RunService] = []

    def make(sim: SimServer, **kw: Any) -> RunService:
        service = RunService(store, settings_for(tmp_path, sim), heartbeat_s=0.2, poll_s=0.05, **kw)
        made.append(service)
        return service

    yield make
    for service in made:
        await service.aclose()


async def collect(events: AsyncIterator[StoredEvent]) -> list[StoredEvent]:
    return [event async for event in events]


async def test_events_stream_a_run_from_run_started_to_run_finished_once_each(
    store: SqlStore, service_for: Any, start_sim: StartSim
) -> None:
    policy = HeldSubCalls(held=True)
    sim = await start_sim(None, CallablePolicy(policy))
    service: RunService = service_for(sim)
    handle = await service.start(ALICE, "What is six times seven?", SPEC)
    reading = asyncio.create_task(collect(service.events(ALICE, handle.run_id)))
    await policy.sub_calls_started.wait()  # the reader is following a live run
    policy.release.set()
    result: RunResult = await handle.result()
    seen = await asyncio.wait_for(reading, 60)

    assert result.answer == "forty-two" and result.stop_reason == "final"
    assert [e.seq for e in seen] == list(range(len(seen)))
    types = [e.type for e in seen]
    assert types[0] == "run_started" and types[-1] == "run_finished"
    assert types.count("run_started") == 1 and types.count("run_finished") == 1
    stored = store.list_events(handle.run_id)
    assert [(e.seq, e.type) for e in stored] == [(e.seq, e.type) for e in seen]
    # A reader that joins later, from a sequence number, gets the rest and stops.
    rest = await collect(service.events(ALICE, handle.run_id, after_seq=2))
    assert [e.seq for e in rest] == [e.seq for e in seen[3:]]
    run = service.get_run(ALICE, handle.run_id)
    assert (run.status, run.tenant, run.answer) == ("completed", "alice", "forty-two")


async def test_cancelling_a_running_run_records_it_cancelled(
    store: SqlStore, service_for: Any, start_sim: StartSim
) -> None:
    policy = HeldSubCalls(held=True)
    sim = await start_sim(None, CallablePolicy(policy))
    service: RunService = service_for(sim)
    handle = await service.start(ALICE, "q", SPEC)
    await policy.sub_calls_started.wait()
    run = await service.cancel(ALICE, handle.run_id)
    assert (run.status, run.stop_reason) == ("cancelled", "cancelled")
    with pytest.raises(RunCancelledError):
        await handle.result()
    # Its events were recorded up to the stop, and a reader of them ends.
    seen = await asyncio.wait_for(collect(service.events(ALICE, handle.run_id)), 30)
    assert seen and seen[0].type == "run_started"
    policy.release.set()


async def test_a_cancel_requested_through_the_store_stops_the_run_at_its_heartbeat(
    store: SqlStore, service_for: Any, start_sim: StartSim
) -> None:
    policy = HeldSubCalls(held=True)
    sim = await start_sim(None, CallablePolicy(policy))
    service: RunService = service_for(sim)
    handle = await service.start(ALICE, "q", SPEC)
    await policy.sub_calls_started.wait()
    # What another process's cancel does: only the flag, seen by the owner's heartbeat.
    flagged = await asyncio.to_thread(store.request_cancel, handle.run_id)
    assert flagged.status == "running" and flagged.cancel_requested
    with pytest.raises(RunCancelledError):
        await asyncio.wait_for(handle.result(), 60)
    run = service.get_run(ALICE, handle.run_id)
    assert (run.status, run.stop_reason) == ("cancelled", "cancelled")
    policy.release.set()


async def test_an_interrupted_run_resumes_without_repeating_its_journaled_calls(
    store: SqlStore, service_for: Any, start_sim: StartSim
) -> None:
    policy = HeldSubCalls(held=True)
    sim = await start_sim(None, CallablePolicy(policy))
    first: RunService = service_for(sim)
    handle = await first.start(ALICE, "q", SPEC)
    await policy.sub_calls_started.wait()  # the first root turn is journaled
    await first.aclose(detail="stopped for the test")
    with pytest.raises(RunInterrupted):
        await handle.result()
    run = store.get_run(handle.run_id)
    assert run is not None and (run.status, run.detail) == ("interrupted", "stopped for the test")
    assert root_requests(sim, 0) == 1

    policy.release.set()
    second: RunService = service_for(sim)
    resumed = await second.resume(ALICE, handle.run_id)
    result = await resumed.result()
    assert result.answer == "forty-two"
    assert root_requests(sim, 0) == 1  # the journaled root turn was not asked again
    assert root_requests(sim, 1) == 1
    done = store.get_run(handle.run_id)
    assert done is not None and (done.status, done.attempt) == ("completed", 2)


async def test_limits_cap_the_time_and_depth_of_the_runs_the_service_starts(
    store: SqlStore, tmp_path: Path
) -> None:
    settings = Settings(home=tmp_path / "home")
    service = RunService(
        store, settings, limits=ServiceLimits(execution_timeout_s=5.0, max_depth=2)
    )
    loose = RunSpec(model="openai/m", max_seconds=60.0, max_depth=3)
    tight = RunSpec(model="openai/m", max_seconds=1.0, max_depth=1)
    assert service.new_run(ALICE, "q", loose).settings["max_seconds"] == 5.0
    assert service.new_run(ALICE, "q", loose).settings["max_depth"] == 2
    assert service.new_run(ALICE, "q", tight).settings["max_seconds"] == 1.0
    assert service.new_run(ALICE, "q", SPEC).settings["max_depth"] == 2
    assert service.new_run(ALICE, "q", SPEC).tenant == "alice"


def _message(exc: pytest.ExceptionInfo[BaseException]) -> str:
    return str(exc.value).replace("alices-run", "ID").replace("no-such-run", "ID")


async def test_another_tenants_run_is_not_found_by_every_method(
    store: SqlStore, tmp_path: Path
) -> None:
    settings = Settings(home=tmp_path / "home", env={"OPENAI_API_KEY": "unused"})
    service = RunService(store, settings)
    store.create_run(
        NewRun(
            run_id="alices-run",
            question="q",
            model="openai/m",
            settings=SPEC.to_json(),
            tenant="alice",
        )
    )
    store.finish_run("alices-run", status="interrupted", stop_reason="interrupted")
    calls: dict[str, Callable[[str], object]] = {
        "get_run": lambda rid: service.get_run(BOB, rid),
        "delete_run": lambda rid: service.delete_run(BOB, rid),
        "run_tree": lambda rid: service.run_tree(BOB, rid),
        "export": lambda rid: service.export(BOB, rid, "jsonl"),
    }
    acalls: dict[str, Callable[[str], Awaitable[object]]] = {
        "cancel": lambda rid: service.cancel(BOB, rid),
        "resume": lambda rid: service.resume(BOB, rid),
        "replay": lambda rid: service.replay(BOB, rid),
        "events": lambda rid: collect(service.events(BOB, rid)),
    }
    for name, call in calls.items():
        messages: list[str] = []
        for rid in ("alices-run", "no-such-run"):
            with pytest.raises(RunNotFoundError) as caught:
                call(rid)
            messages.append(_message(caught))
        assert messages[0] == messages[1], name
    for name, acall in acalls.items():
        messages = []
        for rid in ("alices-run", "no-such-run"):
            with pytest.raises(RunNotFoundError) as caught:
                await acall(rid)
            messages.append(_message(caught))
        assert messages[0] == messages[1], name
    assert service.list_runs(BOB).runs == ()
    assert [r.run_id for r in service.list_runs(ALICE).runs] == ["alices-run"]
    run = store.get_run("alices-run")  # nothing Bob did changed it
    assert run is not None and (run.status, run.cancel_requested) == ("interrupted", False)
    store.open_session("alices-notes", tenant="alice")
    with pytest.raises(SessionNotFoundError):
        await service.start(BOB, "q", SPEC, session="alices-notes")


def test_runs_are_listed_a_page_at_a_time_newest_first(store: SqlStore, tmp_path: Path) -> None:
    service = RunService(store, Settings(home=tmp_path / "home"))
    for i in range(5):
        store.create_run(
            NewRun(run_id=f"r{i}", question="q", created_at=1000.0 + i, tenant="alice")
        )
    store.create_run(NewRun(run_id="bobs", question="q", created_at=1002.5, tenant="bob"))
    seen: list[str] = []
    cursor: str | None = None
    while True:
        page = service.list_runs(ALICE, limit=2, cursor=cursor)
        seen += [run.run_id for run in page.runs]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == ["r4", "r3", "r2", "r1", "r0"]


async def test_runs_take_their_sandboxes_from_the_warm_pool_one_worker_each(
    store: SqlStore, service_for: Any, start_sim: StartSim
) -> None:
    pools = SandboxPools(1)
    sim = await start_sim(None, CallablePolicy(HeldSubCalls(held=False)))
    service: RunService = service_for(sim, sandboxes=pools)
    factory = pools.factory_for(SPEC)
    assert factory is not None and factory.pool is not None
    # The same kind of sandbox shares a pool; another memory budget gets its own.
    assert pools.factory_for(SPEC) is factory
    assert pools.factory_for(RunSpec(model="openai/m", memory_mb=512)) is not factory
    assert SandboxPools(0).factory_for(SPEC) is None
    first = await (await service.start(ALICE, "q", SPEC)).result()
    second = await (await service.start(ALICE, "q", SPEC)).result()
    assert (first.answer, second.answer) == ("forty-two", "forty-two")
    # Both runs asked the pool for their worker (a ready one, or one started then).
    assert factory.pool.hits + factory.pool.misses == 2
