"""Runs of the queue tests: a two-turn root against the simulator, and waiting on the store."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rlm_engine.service.limits import ServiceLimits
from rlm_engine.service.queue import RunQueue
from rlm_engine.service.runs import RunService
from rlm_engine.settings import Settings
from rlm_engine.sim.policies import message_text
from rlm_engine.store import SqlStore
from rlm_engine.store.records import TERMINAL_RUN_STATUSES, Run

ASK = "```repl\na = llm_query('what is six times seven?')\nprint(a)\n```"


def is_root(messages: list[dict[str, Any]]) -> bool:
    return bool(messages) and message_text(messages[0]).startswith("You answer a question")


def turn(messages: list[dict[str, Any]]) -> int:
    return sum(1 for m in messages if m.get("role") == "assistant")


def question(messages: list[dict[str, Any]]) -> str:
    return message_text(messages[1]).split("Question: ", 1)[1].split("\n", 1)[0]


def two_turns(messages: list[dict[str, Any]]) -> str:
    """A sub-call, then FINAL of its answer and the question (so each run's answer is its
    own)."""
    if not is_root(messages):
        return "forty-two"
    if turn(messages) == 0:
        return ASK
    return f"```repl\nFINAL(a + ' for ' + {question(messages)!r})\n```"


def settings_for(home: Path, url: str, sim_url: str) -> Settings:
    return Settings(
        home=home,
        store_url=url,
        env={"OPENAI_BASE_URL": sim_url, "OPENAI_API_KEY": "sim", "RLM_HOME": str(home)},
    )


def queue_on(
    store: SqlStore, settings: Settings, limits: ServiceLimits, *, stale_after_s: float = 15.0
) -> RunQueue:
    runs = RunService(store, settings, limits=limits, heartbeat_s=0.2, poll_s=0.05)
    return RunQueue(runs, store, limits, poll_s=0.05, stale_after_s=stale_after_s)


async def until(check: Callable[[], Any], what: str, *, timeout_s: float = 90.0) -> Any:
    """Poll ``check`` (in a thread: it reads the store) until it is truthy."""

    async def poll() -> Any:
        while True:
            value = await asyncio.to_thread(check)
            if value:
                return value
            await asyncio.sleep(0.05)

    try:
        return await asyncio.wait_for(poll(), timeout_s)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


def all_finished(store: SqlStore, run_ids: list[str]) -> list[Run] | None:
    found = [store.get_run(run_id) for run_id in run_ids]
    done = [run for run in found if run is not None and run.status in TERMINAL_RUN_STATUSES]
    return done if len(done) == len(run_ids) else None


def started_events(store: SqlStore, run_id: str) -> int:
    return sum(1 for e in store.list_events(run_id) if e.type == "run_started")
