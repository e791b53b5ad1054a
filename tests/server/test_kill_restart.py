"""kill -9 of the server in the middle of a run: on restart the run resumes from its
journal and completes, no journaled model call is requested again, and an SSE client
that reconnects with Last-Event-ID receives every event exactly once."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from server_support import (
    ANSWER,
    CALLS,
    KILL_AFTER,
    LATENCY_S,
    Launch,
    LiveServer,
    SseEvent,
    StartSimThread,
    assert_contiguous,
    batch_policy,
    is_root,
    iter_sse,
    journaled_sub_calls,
    server_env,
    wait_for,
)

from rlm_engine.sim import CallablePolicy, SimConfig
from rlm_engine.sim.policies import message_text
from rlm_engine.store.factory import open_store


def sub_prompts(requests: list[Any]) -> list[str]:
    return [message_text(r.messages[-1]) for r in requests if not is_root(list(r.messages))]


def root_turns(requests: list[Any]) -> list[int]:
    return [
        sum(1 for m in r.messages if m.get("role") == "assistant")
        for r in requests
        if is_root(list(r.messages))
    ]


class Follower:
    """Reads a run's SSE stream on a thread until the stream ends or breaks."""

    def __init__(self, server: LiveServer, run_id: str, last_id: str | None = None) -> None:
        self.events: list[SseEvent] = []
        self.error: BaseException | None = None
        headers = {"Last-Event-ID": last_id} if last_id is not None else {}
        self._thread = threading.Thread(target=self._read, args=(server, run_id, headers))
        self._thread.start()

    def _read(self, server: LiveServer, run_id: str, headers: dict[str, str]) -> None:
        try:
            with (
                server.client(timeout=httpx.Timeout(120, connect=10)) as client,
                client.stream("GET", f"/v1/runs/{run_id}/events", headers=headers) as reply,
            ):
                for event in iter_sse(reply):
                    self.events.append(event)
        except Exception as exc:  # kept for the test to judge (a kill breaks the stream)
            self.error = exc

    def join(self) -> list[SseEvent]:
        self._thread.join(timeout=180)
        assert not self._thread.is_alive(), "the SSE stream never ended"
        return self.events


def test_a_killed_server_resumes_the_run_and_sse_misses_nothing(
    launch: Launch, sim_thread: StartSimThread, tmp_path: Path
) -> None:
    sim = sim_thread(SimConfig(ttft_s=LATENCY_S), CallablePolicy(batch_policy))
    env = server_env(tmp_path / "home", sim.url)
    first = launch(env)
    with first.client() as client:
        submitted = client.post("/v1/runs", json={"question": "count the answers"})
    assert submitted.status_code == 202, submitted.text
    run_id = submitted.json()["run_id"]
    follower = Follower(first, run_id)

    def enough_journaled() -> bool:
        return len(journaled_sub_calls(env, run_id)) >= KILL_AFTER

    wait_for(enough_journaled, f"{KILL_AFTER} journaled sub-calls", server=first)
    first.kill()
    before = follower.join()
    # The kill broke the stream (it did not end as if the run were over).
    assert isinstance(follower.error, httpx.TransportError), follower.error
    assert before and before[0].event == "run_started"
    assert "run_finished" not in [e.event for e in before]
    journaled = journaled_sub_calls(env, run_id)
    assert KILL_AFTER <= len(journaled) < CALLS
    # Requests the dead server had in flight finish at the simulator: count them as its.
    time.sleep(4 * LATENCY_S)
    requested_before = len(sim.requests)

    second = launch(env, port=first.port)  # the same address: the client just reconnects
    again = Follower(second, run_id, last_id=before[-1].id)
    after = again.join()
    assert again.error is None, again.error

    with second.client() as client:
        run = client.get(f"/v1/runs/{run_id}").json()
    assert run["status"] == "completed", run
    assert run["answer"] == ANSWER
    assert run["attempt"] == 2

    # Every event exactly once across the reconnect, ending with the run's end.
    events = before + after
    assert_contiguous(events)
    assert events[-1].event == "run_finished"
    store = open_store(env.get("RLM_STORE_URL"), Path(env["RLM_HOME"]))
    try:
        stored = [e.seq for e in store.list_events(run_id)]
    finally:
        store.close()
    assert [e.seq for e in events] == stored

    # No journaled call went to the model again: not the first root turn, not a sub-call.
    resumed = sim.requests[requested_before:]
    asked_again = Counter(sub_prompts(resumed))
    assert not journaled & set(asked_again), sorted(journaled & set(asked_again))[:5]
    assert max(asked_again.values()) == 1
    assert set(asked_again) | journaled == {f"item {i}" for i in range(CALLS)}
    assert root_turns(resumed) == [1]
