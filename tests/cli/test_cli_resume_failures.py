"""A run failed by a provider outage is resumed once the provider is back; a resume that
cannot go on leaves the run as resumable as it was; unfinished runs show their journal's
totals; a resume under another engine version says so first."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from cli_support import cli, cli_env, is_root, turn

from rlm_engine.service.run_records import engine_version
from rlm_engine.sim.config import SimConfig
from rlm_engine.sim.policies import CallablePolicy, message_text
from rlm_engine.sim.runner import SimServerThread
from rlm_engine.store.factory import open_store
from rlm_engine.store.records import Run
from rlm_engine.store.tables import nodes, runs

BATCH = "```repl\nout = llm_query_batched(['a', 'b'])\nprint(out)\n```"
FINAL = "```repl\nFINAL(' & '.join(out))\n```"
# Requests 0-2 (the first root turn, its two sub-calls) succeed; every attempt at the
# second root turn fails until the retries give up.
OUTAGE = (None, None, None, "500", "500", "500", "500", "500", "500")


def policy(messages: list[dict[str, Any]]) -> str:
    if not is_root(messages):
        return f"answer to {message_text(messages[-1])}"
    return [BATCH, FINAL][min(turn(messages), 1)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stored_run(home: Path, run_id: str) -> Run:
    store = open_store(None, home)
    try:
        run = store.get_run(run_id)
    finally:
        store.close()
    assert run is not None
    return run


def update(home: Path, table: sa.Table, where: Any, **values: Any) -> None:
    store = open_store(None, home)
    try:
        with store.engine.begin() as conn:  # type: ignore[attr-defined]
            conn.execute(sa.update(table).where(where).values(**values))
    finally:
        store.close()


def root_turns(sim: SimServerThread) -> list[int]:
    conversations = [list(r.messages) for r in sim.requests]
    return [turn(m) for m in conversations if is_root(m)]


def fail_by_outage(tmp_path: Path, port: int) -> tuple[str, dict[str, str]]:
    """`rlm ask` whose second root turn meets a provider answering only 500s."""
    config = SimConfig(port=port, fault_script=OUTAGE)
    with SimServerThread(config, CallablePolicy(policy)) as sim:
        env = cli_env(tmp_path, sim.url)
        asked = cli(["ask", "q", "--model", "openai/m", "--json"], env)
        assert asked.returncode == 1, asked.stderr
        assert "Traceback" not in asked.stderr
    result = json.loads(asked.stdout)
    assert result["stop_reason"] == "error"
    return result["run_id"], env


def test_an_outage_failed_run_resumes_when_the_provider_is_back(tmp_path: Path) -> None:
    home, port = tmp_path / "home", free_port()
    run_id, env = fail_by_outage(tmp_path, port)
    failed = stored_run(home, run_id)
    assert failed.status == "failed", failed.detail
    assert failed.failure_kind in {"server", "circuit_open"}, failed.detail
    assert failed.engine_version == engine_version() and failed.settings_version == 1

    # (c) the failed run shows what its journal holds: one root turn and two sub-calls.
    listing = cli(["runs", "list", "--json"], env)
    assert listing.returncode == 0, listing.stderr
    totals = json.loads(listing.stdout)[0]["totals"]
    assert totals["from_journal"] is True
    assert totals["iterations"] == 1 and totals["sub_calls"] == 2 and totals["input_tokens"] > 0
    shown = cli(["runs", "show", run_id], env)
    assert shown.returncode == 0, shown.stderr
    assert "totals: 1 iterations" in shown.stdout and "2 sub-calls" in shown.stdout

    # (b) the provider is still down (nothing listens): the attempt fails and the run stays
    # as it was, resumable, with the attempt's error kept.
    still_down = cli(["runs", "resume", run_id, "--json"], env)
    assert still_down.returncode == 1, still_down.stderr
    after = stored_run(home, run_id)
    assert (after.status, after.failure_kind) == ("failed", failed.failure_kind)
    assert after.last_error and after.attempt == 2

    # (a) the provider is back: the resume completes and asks only for the second turn.
    with SimServerThread(SimConfig(port=port), CallablePolicy(policy)) as sim:
        resumed = cli(["runs", "resume", run_id, "--json"], env)
        assert resumed.returncode == 0, resumed.stderr + resumed.stdout[:2000]
        assert root_turns(sim) == [1] and len(sim.requests) == 1
    out = json.loads(resumed.stdout)
    assert out["answer"] == "answer to a & answer to b"
    done = stored_run(home, run_id)
    assert done.status == "completed" and done.last_error is None and done.attempt == 3
    assert not done.totals.from_journal and done.totals.iterations == 2


def test_a_diverging_resume_leaves_the_run_resumable(tmp_path: Path) -> None:
    home, port = tmp_path / "home", free_port()
    run_id, env = fail_by_outage(tmp_path, port)
    turn_node = (nodes.c.run_id == run_id) & (nodes.c.node_id == "r/0")
    store = open_store(None, home)
    try:
        with store.engine.begin() as conn:  # type: ignore[attr-defined]
            recorded = conn.execute(sa.select(nodes.c.request_hash).where(turn_node)).scalar_one()
    finally:
        store.close()
    update(home, nodes, turn_node, request_hash="0" * 64)  # as if another engine asked
    update(home, runs, runs.c.run_id == run_id, engine_version="0.0.1")
    with SimServerThread(SimConfig(port=port), CallablePolicy(policy)) as sim:
        diverged = cli(["runs", "resume", run_id, "--json"], env)
        assert diverged.returncode == 1, diverged.stderr
        after = stored_run(home, run_id)
        assert after.status == "failed" and after.failure_kind in {"server", "circuit_open"}
        assert after.last_error is not None and "NondeterminismError" in after.last_error
        assert "recorded by rlm-engine 0.0.1" in after.last_error

        update(home, nodes, turn_node, request_hash=recorded)
        resumed = cli(["runs", "resume", run_id, "--json"], env)
        assert resumed.returncode == 0, resumed.stderr + resumed.stdout[:2000]
        assert root_turns(sim) == [1]
    assert stored_run(home, run_id).status == "completed"


def test_an_interrupted_run_shows_its_journal_totals(tmp_path: Path) -> None:
    home, port = tmp_path / "home", free_port()
    run_id, env = fail_by_outage(tmp_path, port)
    update(home, runs, runs.c.run_id == run_id, status="interrupted", failure_kind=None)
    listed = json.loads(cli(["runs", "list", "--json"], env).stdout)[0]
    assert listed["status"] == "interrupted"
    assert listed["totals"]["iterations"] == 1 and listed["totals"]["sub_calls"] == 2
    shown = cli(["runs", "show", run_id], env)
    assert "totals: 1 iterations" in shown.stdout and "2 sub-calls" in shown.stdout


def test_resume_and_replay_under_another_engine_version_warn_first(tmp_path: Path) -> None:
    home, port = tmp_path / "home", free_port()
    run_id, env = fail_by_outage(tmp_path, port)
    update(home, runs, runs.c.run_id == run_id, engine_version="0.0.1")
    with SimServerThread(SimConfig(port=port), CallablePolicy(policy)):
        resumed = cli(["runs", "resume", run_id, "--json"], env)
    assert resumed.returncode == 0, resumed.stderr + resumed.stdout[:2000]
    warning = resumed.stderr.split("rlm: warning: ", 1)[1]
    assert "0.0.1" in warning and engine_version() in warning and "diverge" in warning

    replayed = cli(["replay", run_id, "--json"], env)
    assert replayed.returncode == 0, replayed.stderr
    assert "0.0.1" in replayed.stderr and "diverge" in replayed.stderr

    update(home, runs, runs.c.run_id == run_id, settings_version=99)
    refused = cli(["replay", run_id], env)
    assert refused.returncode == 2
    assert "shape 99" in refused.stderr and "Traceback" not in refused.stderr


def test_a_completed_run_is_refused_with_what_to_do(tmp_path: Path) -> None:
    with SimServerThread(SimConfig(), CallablePolicy(policy)) as sim:
        env = cli_env(tmp_path, sim.url)
        done = json.loads(cli(["ask", "q", "--model", "openai/m", "--json"], env).stdout)
        refused = cli(["runs", "resume", done["run_id"]], env)
    assert refused.returncode == 2
    assert "never resumed" in refused.stderr and "rlm replay" in refused.stderr


def test_a_run_the_provider_refused_cannot_be_resumed_and_says_what_to_do(
    tmp_path: Path,
) -> None:
    config = SimConfig(fault_script=("context_length",))
    with SimServerThread(config, CallablePolicy(policy)) as sim:
        env = cli_env(tmp_path, sim.url)
        asked = json.loads(cli(["ask", "q", "--model", "openai/m", "--json"], env).stdout)
        assert stored_run(tmp_path / "home", asked["run_id"]).failure_kind == "context_length"
        refused = cli(["runs", "resume", asked["run_id"]], env)
        assert len(sim.requests) == 1  # the refusal asked the provider nothing
    assert refused.returncode == 2
    assert "context_length" in refused.stderr and "rlm: hint:" in refused.stderr
    assert "rlm ask" in refused.stderr and "Traceback" not in refused.stderr
