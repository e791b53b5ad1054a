"""The durable queue: submitted runs executed by whichever process claims them, within
the global and per-tenant limits; a run whose process died resumed from its journal."""

from __future__ import annotations

import asyncio
import getpass
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from queue_support import (
    all_finished,
    is_root,
    queue_on,
    settings_for,
    started_events,
    turn,
    two_turns,
    until,
)

from rlm_engine.service.errors import TenantLimitError
from rlm_engine.service.limits import ServiceLimits
from rlm_engine.service.principal import Principal
from rlm_engine.service.queue import RunQueue, seconds_to_utc_midnight
from rlm_engine.service.spec import RunSpec
from rlm_engine.settings import DEFAULT_WARM_POOL
from rlm_engine.sim import CallablePolicy, SimServer
from rlm_engine.store import ModelCall, NewRun, SqlStore, open_store
from rlm_engine.store.records import MemoryScope, Run
from sim_support import StartSim

ALICE = Principal("alice", "a")
BOB = Principal("bob", "b")
SPEC = RunSpec(model="openai/m")


async def serving(queues: list[RunQueue], body: Callable[[], Awaitable[Any]]) -> Any:
    """Run ``body`` while the queues serve; stop and close them afterwards."""
    stop = asyncio.Event()
    tasks = [asyncio.create_task(q.serve(stop)) for q in queues]
    try:
        return await body()
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        for q in queues:
            await q.aclose()
            await q.service.aclose()


@pytest.fixture
async def sim(start_sim: StartSim) -> SimServer:
    return await start_sim(None, CallablePolicy(two_turns))


def open_two(url: str, home: Path) -> tuple[SqlStore, SqlStore]:
    """Two stores on one database, as two processes would open it."""
    return open_store(url, home), open_store(url, home)


async def test_submitted_runs_complete_within_the_global_limit(
    store_url: str, tmp_path: Path, sim: SimServer
) -> None:
    home = tmp_path / "home"
    store = open_store(store_url, home)
    limits = ServiceLimits(max_concurrent_runs=2, tenant_concurrent_runs=8)
    queue = queue_on(store, settings_for(home, store_url, sim.url), limits)
    try:
        submitted = [await queue.submit(ALICE, f"q{i}", SPEC) for i in range(5)]
        assert {run.status for run in submitted} == {"queued"}
        assert all(run.auto_resume and run.tenant == "alice" for run in submitted)
        ids = [run.run_id for run in submitted]
        most = 0

        async def finish() -> list[Run]:
            nonlocal most

            def check() -> list[Run] | None:
                nonlocal most
                running = store.count_runs(tenant="alice", statuses=("running",))
                most = max(most, running)
                return all_finished(store, ids)

            return await until(check, "the queued runs to finish")

        done = await serving([queue], finish)
        assert [run.status for run in done] == ["completed"] * 5
        assert sorted(run.answer or "" for run in done) == [f"forty-two for q{i}" for i in range(5)]
        assert all(started_events(store, run_id) == 1 for run_id in ids)
        assert 1 <= most <= 2
    finally:
        store.close()


async def test_two_processes_share_the_queue_and_run_each_run_once(
    store_url: str, tmp_path: Path, sim: SimServer
) -> None:
    home = tmp_path / "home"
    store_a, store_b = open_two(store_url, home)
    settings = settings_for(home, store_url, sim.url)
    limits = ServiceLimits(max_concurrent_runs=2, tenant_concurrent_runs=16)
    queue_a, queue_b = queue_on(store_a, settings, limits), queue_on(store_b, settings, limits)
    claimed: dict[str, list[str]] = {"a": [], "b": []}
    for name, queue in (("a", queue_a), ("b", queue_b)):
        service = queue.service
        execute = service.execute_claimed

        async def recording(run: Run, *, previous: Run | None, _n=name, _e=execute) -> Any:
            claimed[_n].append(run.run_id)
            return await _e(run, previous=previous)

        service.execute_claimed = recording  # type: ignore[method-assign]
    try:
        ids = [(await queue_a.submit(ALICE, f"q{i}", SPEC)).run_id for i in range(6)]
        done = await serving(
            [queue_a, queue_b],
            lambda: until(lambda: all_finished(store_a, ids), "both queues to finish the runs"),
        )
        assert [run.status for run in done] == ["completed"] * 6
        assert sorted(claimed["a"] + claimed["b"]) == sorted(ids)  # each run claimed once
        assert claimed["a"] and claimed["b"]
        assert all(run.attempt == 1 for run in done)
        assert all(started_events(store_a, run_id) == 1 for run_id in ids)
        roots = [r for r in sim.requests if is_root(list(r.messages))]
        assert len(roots) == 12  # two root turns per run, none made twice
    finally:
        store_a.close()
        store_b.close()


async def test_a_tenant_at_its_limit_waits_while_others_run(tmp_path: Path, sim: SimServer) -> None:
    home = tmp_path / "home"
    url = f"sqlite:///{home / 'rlm.db'}"
    store = open_store(url, home)
    limits = ServiceLimits(max_concurrent_runs=4, tenant_concurrent_runs=1)
    queue = queue_on(store, settings_for(home, url, sim.url), limits)
    # Alice already runs one run (owned by this live process, so it stays running).
    store.create_run(NewRun(run_id="busy", question="q", tenant="alice"))
    try:
        waiting = await queue.submit(ALICE, "alice's", SPEC)
        other = await queue.submit(BOB, "bob's", SPEC)
        assert store.count_running_by_tenant() == {"alice": 1}

        async def body() -> None:
            await until(lambda: all_finished(store, [other.run_id]), "bob's run")
            # Polls go on claiming for others; alice's run is never taken meanwhile.
            for _ in range(5):
                await asyncio.sleep(0.1)
                run = store.get_run(waiting.run_id)
                assert run is not None and run.status == "queued"
            store.finish_run("busy", status="completed", stop_reason="final")
            done = await until(lambda: all_finished(store, [waiting.run_id]), "alice's run")
            assert done[0].answer == "forty-two for alice's"

        await serving([queue], body)
    finally:
        store.close()


def test_submit_refuses_a_full_backlog(tmp_path: Path) -> None:
    home = tmp_path / "home"
    store = open_store(None, home)
    queue = RunQueue(None, store, ServiceLimits(tenant_concurrent_runs=2))  # type: ignore[arg-type]
    try:
        for i in range(2):
            store.create_run(NewRun(run_id=f"r{i}", question="q", tenant="alice"))
            store.create_run(NewRun(run_id=f"w{i}", question="q", tenant="alice", queued=True))
        with pytest.raises(TenantLimitError) as caught:
            queue.check_limits("alice")
        assert caught.value.limit == "concurrent_runs"
        assert caught.value.retry_after_s == 5
        queue.check_limits("bob")  # another tenant is not held back
        store.finish_run("w0", status="cancelled", stop_reason="cancelled")
        queue.check_limits("alice")  # room in the backlog again
    finally:
        store.close()


def test_submit_refuses_a_tenant_over_its_daily_budget(tmp_path: Path) -> None:
    home = tmp_path / "home"
    store = open_store(None, home)
    queue = RunQueue(None, store, ServiceLimits(daily_budget_usd=1.0))  # type: ignore[arg-type]
    try:
        store.create_run(NewRun(run_id="r", question="q", tenant="alice"))
        for node, cost in (("n1", 0.6), ("n2", 0.4)):
            store.record_model_call(
                ModelCall(
                    run_id="r",
                    node_id=node,
                    kind="llm",
                    request_hash=node,
                    response="x",
                    cost_usd=cost,
                )
            )
        now = time.time()
        with pytest.raises(TenantLimitError) as caught:
            queue.check_limits("alice", now=now)
        assert caught.value.limit == "daily_budget"
        assert caught.value.retry_after_s == pytest.approx(seconds_to_utc_midnight(now))
        queue.check_limits("bob", now=now)
        # Tomorrow (UTC) the budget starts over.
        queue.check_limits("alice", now=now + seconds_to_utc_midnight(now) + 1)
    finally:
        store.close()


def test_seconds_to_utc_midnight() -> None:
    noon = 1_767_225_600.0 + 12 * 3600  # 2026-01-01 12:00 UTC
    assert seconds_to_utc_midnight(noon) == 12 * 3600
    assert seconds_to_utc_midnight(noon - 12 * 3600) == 24 * 3600


async def test_a_run_whose_host_stopped_beating_is_taken_over(
    store_url: str, tmp_path: Path, sim: SimServer
) -> None:
    home = tmp_path / "home"
    store = open_store(store_url, home)
    limits = ServiceLimits()
    queue = queue_on(store, settings_for(home, store_url, sim.url), limits, stale_after_s=15)
    service = queue.service
    run = store.create_run(service.new_run(ALICE, "lost", SPEC, auto_resume=True))
    # As if another host owned it and went silent 60 s ago.
    engine = sa.create_engine(store_url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE runs SET owner_host = 'elsewhere', heartbeat_at = :t, updated_at = :t "
                "WHERE run_id = :r"
            ),
            {"t": time.time() - 60, "r": run.run_id},
        )
    engine.dispose()
    try:
        done = await serving(
            [queue], lambda: until(lambda: all_finished(store, [run.run_id]), "the takeover")
        )
        assert done[0].status == "completed"
        assert done[0].answer == "forty-two for lost"
        assert done[0].attempt == 2
    finally:
        store.close()


SLOW_CELL = (
    "```repl\n"
    "a = llm_query('what is six times seven?')\n"
    "if memory.get('attempted') is None:\n"
    "    memory['attempted'] = True\n"
    "    import time\n"
    "    time.sleep(120)\n"
    "print(a)\n"
    "```"
)

START_AND_WAIT = """
import asyncio
from rlm_engine.service import open_services
from rlm_engine.service.principal import Principal
from rlm_engine.service.spec import RunSpec
from rlm_engine.settings import Settings

async def main():
    services = open_services(Settings.from_env())
    handle = await services.runs.start(
        Principal.local(), "slow", RunSpec(model="openai/m"), auto_resume=True
    )
    print(handle.run_id, flush=True)
    await handle.result()

asyncio.run(main())
"""


def crash_policy(messages: list[dict[str, Any]]) -> str:
    if not is_root(messages):
        return "forty-two"
    return [SLOW_CELL, "```repl\nFINAL(a)\n```"][min(turn(messages), 1)]


async def test_a_run_whose_process_was_killed_is_resumed_from_its_journal(
    tmp_path: Path, start_sim: StartSim
) -> None:
    sim = await start_sim(None, CallablePolicy(crash_policy))
    home = tmp_path / "home"
    url = f"sqlite:///{home / 'rlm.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI", "RLM_"))}
    env.update(OPENAI_BASE_URL=sim.url, OPENAI_API_KEY="sim", RLM_HOME=str(home))
    env["RLM_STORE_URL"] = url
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(START_AND_WAIT)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    store = open_store(url, home)
    try:
        scope = MemoryScope.user(getpass.getuser())

        def attempted() -> bool:
            assert proc.poll() is None, proc.communicate()[1].decode()
            return store.memory_get(scope, "attempted") is not None

        await until(attempted, "the run to reach its sleep")
        os.kill(proc.pid, signal.SIGKILL)
        await asyncio.to_thread(proc.wait, 10)
        assert proc.stdout is not None
        run_id = proc.stdout.read().decode().strip()
        run = store.get_run(run_id)
        assert run is not None and run.status == "running" and run.auto_resume

        queue = queue_on(store, settings_for(home, url, sim.url), ServiceLimits())
        done = await serving(
            [queue], lambda: until(lambda: all_finished(store, [run_id]), "the resumed run")
        )
        assert done[0].status == "completed"
        assert done[0].answer == "forty-two"
        assert done[0].attempt == 2
        # No journaled model call was made again: one sub-call, one first root turn.
        subs = [r for r in sim.requests if not is_root(list(r.messages))]
        first_turns = [
            r for r in sim.requests if is_root(list(r.messages)) and turn(list(r.messages)) == 0
        ]
        assert len(subs) == 1
        assert len(first_turns) == 1
    finally:
        if proc.poll() is None:
            proc.kill()
        store.close()


async def test_open_services_builds_everything_on_the_settings_store(
    tmp_path: Path, sim: SimServer
) -> None:
    from rlm_engine.service import open_services

    home = tmp_path / "home"
    services = open_services(settings_for(home, f"sqlite:///{home / 'rlm.db'}", sim.url))
    assert services.limits == ServiceLimits.from_settings(services.settings)
    info = services.sessions.create_text(ALICE, "doc", "the context")
    run = await services.queue.submit(
        ALICE, "in a session", SPEC, session=info.id, context_key=info.context_key
    )
    assert run.context_hash == info.context_key and run.session == info.id

    async def body() -> list[Run]:
        return await until(lambda: all_finished(services.store, [run.run_id]), "the run")

    stop = asyncio.Event()
    serve = asyncio.create_task(services.queue.serve(stop))
    try:
        done = await body()
        # A serving process keeps sandboxes warm unless RLM_WARM_POOL says otherwise.
        factory = services.runs.sandboxes.factory_for(SPEC)
        assert services.runs.sandboxes.size == DEFAULT_WARM_POOL
        assert factory is not None and factory.pool is not None
        assert factory.pool.hits + factory.pool.misses == 1  # the run's sandbox came from it
    finally:
        await services.aclose()
        await serve
    assert done[0].answer == "forty-two for in a session"
    reopened = open_store(f"sqlite:///{home / 'rlm.db'}", home)
    try:
        session = reopened.get_session(info.id)
        assert session is not None and session.tenant == "alice"
        assert [r.run_id for r in reopened.list_runs(session=info.id)] == [run.run_id]
    finally:
        reopened.close()


async def test_a_session_of_another_tenant_is_not_found_on_submit(
    tmp_path: Path, sim: SimServer
) -> None:
    from rlm_engine.service import open_services
    from rlm_engine.store import SessionNotFoundError

    home = tmp_path / "home"
    services = open_services(settings_for(home, f"sqlite:///{home / 'rlm.db'}", sim.url))
    try:
        info = services.sessions.create_text(ALICE, "doc", "alice's context")
        with pytest.raises(SessionNotFoundError):
            await services.queue.submit(
                BOB, "q", SPEC, session=info.id, context_key=info.context_key
            )
        assert services.store.count_runs(tenant=None, statuses=("queued",)) == 0
    finally:
        await services.aclose()


def test_importing_the_service_package_loads_nothing_heavy() -> None:
    code = (
        "import json, sys\n"
        "import rlm_engine.service\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith("
        "('sqlalchemy', 'rlm_engine.engine', 'rlm_engine.service.', 'fastapi', 'psycopg')))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"


async def test_a_run_stopped_by_a_shutdown_is_resumed_by_another_process(
    store_url: str, tmp_path: Path, start_sim: StartSim
) -> None:
    sim = await start_sim(None, CallablePolicy(crash_policy))
    home = tmp_path / "home"
    store_a, store_b = open_two(store_url, home)
    settings = settings_for(home, store_url, sim.url)
    first = queue_on(store_a, settings, ServiceLimits())
    second = queue_on(store_b, settings, ServiceLimits())
    try:
        service_a = first.service
        handle = await service_a.start(Principal.local(), "slow", SPEC, auto_resume=True)
        scope = MemoryScope.user(getpass.getuser())
        await until(lambda: store_a.memory_get(scope, "attempted"), "the run to reach its sleep")
        await service_a.aclose()  # the first process shuts down mid-run
        stopped = store_a.get_run(handle.run_id)
        assert stopped is not None and stopped.status == "interrupted"

        done = await serving(
            [second], lambda: until(lambda: all_finished(store_b, [handle.run_id]), "resume")
        )
        assert done[0].status == "completed"
        assert done[0].answer == "forty-two"
        assert done[0].attempt == 2
        subs = [r for r in sim.requests if not is_root(list(r.messages))]
        assert len(subs) == 1  # the journaled sub-call was not made again
    finally:
        store_a.close()
        store_b.close()


async def test_a_claimed_batch_starts_side_by_side_within_the_limit(
    store_url: str, tmp_path: Path, sim: SimServer
) -> None:
    home = tmp_path / "home"
    store = open_store(store_url, home)
    limits = ServiceLimits(max_concurrent_runs=3, tenant_concurrent_runs=8)
    queue = queue_on(store, settings_for(home, store_url, sim.url), limits)
    service = queue.service
    execute = service.execute_claimed
    batches: list[tuple[int, int]] = []
    claim_batch = store.claim_batch

    def recording_claim(limit: int, **kwargs: Any) -> list[Run]:
        claimed = claim_batch(limit, **kwargs)
        batches.append((limit, len(claimed)))
        return claimed

    store.claim_batch = recording_claim  # type: ignore[method-assign]
    inside = 0
    all_in = asyncio.Event()
    running_seen: list[int] = []

    async def overlapping(run: Run, *, previous: Run | None) -> Any:
        # The first three starts wait for each other: they finish only if they overlap.
        nonlocal inside
        inside += 1
        running_seen.append(
            await asyncio.to_thread(store.count_runs, tenant=None, statuses=("running",))
        )
        if inside == 3:
            all_in.set()
        try:
            await asyncio.wait_for(all_in.wait(), 30)
            return await execute(run, previous=previous)
        finally:
            inside -= 1

    service.execute_claimed = overlapping  # type: ignore[method-assign]
    try:
        ids = [(await queue.submit(ALICE, f"q{i}", SPEC)).run_id for i in range(5)]
        done = await serving(
            [queue], lambda: until(lambda: all_finished(store, ids), "the queued runs")
        )
        assert [run.status for run in done] == ["completed"] * 5
        assert batches[0] == (3, 3)  # the three free slots filled in one claim
        assert max(running_seen) <= 3
        assert all(limit <= 3 for limit, _ in batches)
        assert all(started_events(store, run_id) == 1 for run_id in ids)
    finally:
        store.close()


async def test_a_run_that_fails_to_start_is_given_back_and_frees_its_slot(
    tmp_path: Path, sim: SimServer
) -> None:
    home = tmp_path / "home"
    url = f"sqlite:///{home / 'rlm.db'}"
    store = open_store(url, home)
    limits = ServiceLimits(max_concurrent_runs=1, tenant_concurrent_runs=8)
    queue = queue_on(store, settings_for(home, url, sim.url), limits)
    service = queue.service
    execute = service.execute_claimed

    async def failing_first(run: Run, *, previous: Run | None) -> Any:
        if run.question == "q0":
            raise RuntimeError("no sandbox today")
        return await execute(run, previous=previous)

    service.execute_claimed = failing_first  # type: ignore[method-assign]
    try:
        ids = [(await queue.submit(ALICE, f"q{i}", SPEC)).run_id for i in range(3)]
        # With one slot, the later runs run only if the failed start gave its slot back.
        done = await serving(
            [queue], lambda: until(lambda: all_finished(store, ids), "the queued runs")
        )
        assert [run.status for run in done] == ["failed", "completed", "completed"]
        assert done[0].detail == "RuntimeError: no sandbox today"
        assert done[0].failure_kind == "unknown"
        assert queue.executing == frozenset()
    finally:
        store.close()
