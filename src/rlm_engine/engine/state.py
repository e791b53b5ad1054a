"""State shared by every node of one run's call tree."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from rlm_engine.engine.budgets import Budget
from rlm_engine.engine.config import RLMConfig
from rlm_engine.engine.journal import Journal
from rlm_engine.engine.recursion import ChildSlots
from rlm_engine.events import Event
from rlm_engine.lm.base import LanguageModel
from rlm_engine.plugins.chain import PluginChain
from rlm_engine.sandbox.base import HostHandler, Sandbox

log = logging.getLogger(__name__)

EventListener = Callable[[Event], Awaitable[None] | None]
ModelResolver = Callable[[str], LanguageModel]
SandboxFactory = Callable[[HostHandler, tuple[str, ...]], Sandbox]
Tool = Callable[..., Any]


@dataclass
class TreeState:
    """Budgets, models and listeners shared by the root run and all its children."""

    run_id: str
    config: RLMConfig
    root_model: LanguageModel
    sub_model: LanguageModel
    resolve_model: ModelResolver
    sandbox_factory: SandboxFactory
    budget: Budget
    listeners: list[EventListener]
    tools: Mapping[str, Tool]
    memory: MutableMapping[str, Any]
    output_schema: type[BaseModel] | None = None
    digest_model: LanguageModel | None = None
    journal: Journal | None = None
    plugins: PluginChain = field(init=False)
    sub_call_slots: asyncio.Semaphore = field(init=False)
    children: ChildSlots = field(init=False)
    blocked_cells: int = 0
    _call_seq: int = 0

    def __post_init__(self) -> None:
        self.plugins = PluginChain((), self.emit)
        self.sub_call_slots = asyncio.Semaphore(self.config.max_concurrency)
        self.children = ChildSlots(self.config.max_child_concurrency, self.config.max_children)

    def next_call_id(self) -> str:
        self._call_seq += 1
        return f"c{self._call_seq}"

    async def emit(self, event: Event) -> None:
        if self.plugins.observes_events:
            await self.plugins.on_event(event)
        for listener in self.listeners:
            try:
                outcome = listener(event)
                if outcome is not None:
                    await outcome
            except Exception:  # a broken listener must not break the run
                log.exception("event listener failed on %s", event.type)
