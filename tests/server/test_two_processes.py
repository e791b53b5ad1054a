"""Two server processes on one Postgres store: a run claimed by one that is then killed
with -9 is finished by the other."""

from __future__ import annotations

from pathlib import Path

from server_support import (
    ANSWER,
    KILL_AFTER,
    LATENCY_S,
    Launch,
    StartSimThread,
    batch_policy,
    journaled_sub_calls,
    server_env,
    wait_for,
)

from rlm_engine.sim import CallablePolicy, SimConfig
from rlm_engine.store.factory import open_store
from rlm_engine.store.records import Run


def test_a_run_of_a_killed_process_is_finished_by_the_other(
    launch: Launch, sim_thread: StartSimThread, tmp_path: Path, postgres_url: str
) -> None:
    sim = sim_thread(SimConfig(ttft_s=LATENCY_S), CallablePolicy(batch_policy))
    env = server_env(tmp_path / "home", sim.url, postgres_url)
    servers = {s.pid: s for s in (launch(env), launch(env))}
    first = next(iter(servers.values()))
    with first.client() as client:
        submitted = client.post("/v1/runs", json={"question": "count the answers"})
    assert submitted.status_code == 202, submitted.text
    run_id = submitted.json()["run_id"]

    store = open_store(postgres_url, tmp_path / "home")
    try:

        def stored() -> Run:
            run = store.get_run(run_id)
            assert run is not None, run_id
            return run

        def owner() -> int | None:
            run = stored()
            return run.owner_pid if run.status == "running" else None

        owner_pid = wait_for(owner, "a server to claim the run")
        assert owner_pid in servers, (owner_pid, list(servers))
        claimed, survivor = (
            servers[owner_pid],
            next(s for p, s in servers.items() if p != owner_pid),
        )
        wait_for(
            lambda: len(journaled_sub_calls(env, run_id)) >= KILL_AFTER,
            "sub-calls journaled by the claiming server",
            server=claimed,
        )
        claimed.kill()

        def finished() -> bool:
            with survivor.client() as client:
                return client.get(f"/v1/runs/{run_id}").json()["status"] == "completed"

        wait_for(finished, "the other server to finish the run", timeout_s=120, server=survivor)
        run = stored()
    finally:
        store.close()
    assert run.owner_pid == survivor.pid
    assert run.answer == ANSWER
    assert run.attempt == 2
    with survivor.client() as client:
        shown = client.get(f"/v1/runs/{run_id}").json()
    assert shown["answer"] == ANSWER and shown["attempt"] == 2
