"""`rlm ask` opens its store in the background (`DeferredStore`): the first root request
goes out before the store is opened, and the run is still recorded before its first cell
runs and before a journaled reply reaches a cell. Driven through the run service the CLI
uses, against the simulator, with a store whose opening is held until the simulator has
seen the first request."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import pytest

from rlm_engine.errors import RLMError
from rlm_engine.service.principal import Principal
from rlm_engine.service.runs import RunService
from rlm_engine.service.spec import RunSpec
from rlm_engine.service.store_opening import StoreAccessError
from rlm_engine.settings import Settings
from rlm_engine.sim import CallablePolicy, SimServer
from rlm_engine.sim.policies import message_text
from rlm_engine.store import open_store
from rlm_engine.store.deferred import DeferredStore
from rlm_engine.store.protocol import Store
from rlm_engine.store.sql_store import SqlStore
from sim_support import StartSim

ASK = "```repl\na = llm_query('what is six times seven?')\nprint(a)\n```"
FINISH = "```repl\nFINAL(a)\n```"


def _is_root(messages: Sequence[dict[str, Any]]) -> bool:
    return bool(messages) and message_text(messages[0]).startswith("You answer a question")


def _turn(messages: Sequence[dict[str, Any]]) -> int:
    return sum(1 for m in messages if m.get("role") == "assistant")


def _settings(tmp_path: Path, sim: SimServer) -> Settings:
    home = tmp_path / "home"
    env = {"OPENAI_BASE_URL": sim.url, "OPENAI_API_KEY": "sim", "RLM_HOME": str(home)}
    return Settings(home=home, env=env)


class HeldOpening:
    """A store opener that waits until the first root request has arrived: a run that
    needed its store before that request would never make it (the opener gives up)."""

    def __init__(self, tmp_path: Path) -> None:
        self.home = tmp_path / "home"
        self.first_request = threading.Event()
        self.opened: SqlStore | None = None

    def __call__(self) -> Store:
        if not self.first_request.wait(30):
            raise RLMError("the store was needed before the first model request")
        self.opened = open_store(None, self.home)
        return self.opened


async def test_the_first_request_goes_out_before_the_store_opens_and_cells_wait_for_the_record(
    tmp_path: Path, start_sim: StartSim
) -> None:
    opening = HeldOpening(tmp_path)
    deferred = DeferredStore(opening)
    seen: dict[str, Any] = {}

    def policy(messages: list[dict[str, Any]]) -> str:
        if _is_root(messages):
            if _turn(messages) == 0:
                seen["store ready at the first request"] = deferred.ready.done()
                opening.first_request.set()
            return [ASK, FINISH][min(_turn(messages), 1)]
        # The cell's sub-call: the cell runs only once the run is recorded.
        assert opening.opened is not None
        seen["run at the sub-call"] = opening.opened.get_run(seen["run_id"])
        return "forty-two"

    sim = await start_sim(None, CallablePolicy(policy))
    service = RunService(cast(Store, deferred), _settings(tmp_path, sim))
    try:
        handle = await service.start(Principal.local(), "six times seven?", RunSpec("openai/m"))
        seen["run_id"] = handle.run_id
        result = await handle.result()
    finally:
        await service.aclose()
        await asyncio.to_thread(deferred.close)

    assert result.answer == "forty-two"
    assert seen["store ready at the first request"] is False
    assert seen["run at the sub-call"] is not None
    store = open_store(None, tmp_path / "home")
    try:
        run = store.get_run(handle.run_id)
        tree = store.run_tree(handle.run_id)
    finally:
        store.close()
    assert run is not None and (run.status, run.answer) == ("completed", "forty-two")
    assert tree is not None
    # Both root turns and the sub-call are journaled.
    assert sorted(n.kind for n in tree.nodes if n.kind in ("root_turn", "llm")) == [
        "llm",
        "root_turn",
        "root_turn",
    ]


async def test_a_store_that_cannot_open_fails_the_run_with_its_error(
    tmp_path: Path, start_sim: StartSim
) -> None:
    def unavailable() -> Store:
        raise StoreAccessError("cannot open the store here", hint="fix RLM_HOME")

    deferred = DeferredStore(unavailable)
    sim = await start_sim(None, CallablePolicy(lambda messages: ASK))
    service = RunService(cast(Store, deferred), _settings(tmp_path, sim))
    try:
        handle = await service.start(Principal.local(), "q", RunSpec("openai/m"))
        with pytest.raises(StoreAccessError, match="cannot open the store here") as failed:
            await handle.result()
    finally:
        await service.aclose()
        await asyncio.to_thread(deferred.close)
    assert failed.value.hint == "fix RLM_HOME"
    # The root's first reply was a cell: it never ran, and no sub-call was made.
    assert all(_is_root(r.messages) for r in sim.requests)
