"""Runs plugins in order and keeps a failing plugin from failing the run."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, TypeVar

from rlm_engine.errors import ConfigurationError, RLMError
from rlm_engine.events import Event, PluginFailed
from rlm_engine.plugins.base import (
    Allow,
    Amend,
    Block,
    CellDecision,
    CellInfo,
    ModelCallInfo,
    Plugin,
    RunInfo,
)
from rlm_engine.types import Completion, Message

if TYPE_CHECKING:
    from rlm_engine.engine.result import RunResult
    from rlm_engine.sandbox.base import CellResult

log = logging.getLogger(__name__)
ENTRY_POINT_GROUP = "rlm_engine.plugins"
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class CellVerdict:
    decision: CellDecision
    code: str
    plugin: str
    """The plugin that blocked the cell ("" when it was not blocked)."""


class PluginError(RLMError):
    """A plugin marked ``required`` failed; the run stops with this error."""


def load_entry_point_plugins(names: Iterable[str]) -> list[Plugin]:
    """Instantiate plugins registered under the ``rlm_engine.plugins`` entry point group."""
    available = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    plugins: list[Plugin] = []
    for name in names:
        entry = available.get(name)
        if entry is None:
            known = ", ".join(sorted(available)) or "none installed"
            raise ConfigurationError(
                f"no plugin named {name!r} in entry point group {ENTRY_POINT_GROUP!r} "
                f"(available: {known})"
            )
        factory = entry.load()
        plugin = factory()
        if not isinstance(plugin, Plugin):
            raise ConfigurationError(f"entry point {name!r} did not produce a Plugin")
        plugins.append(plugin)
    return plugins


def _overrides(plugin: Plugin, hook: str) -> bool:
    """Whether ``plugin`` does anything in ``hook`` (the base class's hooks do nothing)."""
    if hook in getattr(plugin, "__dict__", {}):
        return True
    return getattr(type(plugin), hook) is not getattr(Plugin, hook)


class PluginChain:
    """The ordered plugins of one RLM. Each hook runs every plugin in order.

    A plugin is only called for the hooks it overrides: the base class's hooks do nothing,
    and the per-call hooks (``before_model_call``, ``after_model_call``, ``on_event``) run
    for every sub-call of a fan-out."""

    def __init__(self, plugins: Sequence[Plugin], emit: Callable[[Event], Awaitable[None]]) -> None:
        self.plugins = tuple(plugins)
        self._emit = emit
        self._before_model_call = tuple(
            p for p in self.plugins if _overrides(p, "before_model_call")
        )
        self._after_model_call = tuple(p for p in self.plugins if _overrides(p, "after_model_call"))
        self._on_event = tuple(p for p in self.plugins if _overrides(p, "on_event"))

    @property
    def observes_events(self) -> bool:
        """Whether any plugin has an ``on_event`` hook (if not, emitting can skip the chain)."""
        return bool(self._on_event)

    async def _guard(self, plugin: Plugin, hook: str, run_id: str, call: Awaitable[T]) -> T | None:
        try:
            return await call
        except Exception as exc:
            if plugin.required:
                raise PluginError(
                    f"required plugin {plugin.name!r} failed in {hook}: {exc}"
                ) from exc
            log.warning("plugin %s failed in %s: %s", plugin.name, hook, exc)
            await self._emit(
                PluginFailed(
                    run_id=run_id,
                    plugin=plugin.name,
                    hook=hook,
                    error=f"{type(exc).__name__}: {exc}",
                )
            )
            return None

    async def before_run(self, run: RunInfo) -> None:
        for plugin in self.plugins:
            await self._guard(plugin, "before_run", run.run_id, plugin.before_run(run))

    async def after_run(self, run: RunInfo, result: RunResult) -> None:
        for plugin in self.plugins:
            await self._guard(plugin, "after_run", run.run_id, plugin.after_run(run, result))

    async def before_model_call(self, call: ModelCallInfo) -> tuple[Message, ...]:
        messages = call.messages
        for plugin in self._before_model_call:
            seen = call if messages is call.messages else replace(call, messages=messages)
            amended = await self._guard(
                plugin, "before_model_call", call.run_id, plugin.before_model_call(seen)
            )
            if amended is not None:
                messages = tuple(amended)
        return messages

    async def after_model_call(self, call: ModelCallInfo, completion: Completion) -> None:
        for plugin in self._after_model_call:
            await self._guard(
                plugin, "after_model_call", call.run_id, plugin.after_model_call(call, completion)
            )

    async def before_cell(self, cell: CellInfo) -> CellVerdict:
        """What to do with a cell: the first block wins; amendments accumulate in order."""
        code = cell.code
        for plugin in self.plugins:
            decision = await self._guard(
                plugin, "before_cell", cell.run_id, plugin.before_cell(replace(cell, code=code))
            )
            if isinstance(decision, Block):
                return CellVerdict(decision, code, plugin.name)
            if isinstance(decision, Amend):
                code = decision.code
        return CellVerdict(Amend(code) if code != cell.code else Allow(), code, "")

    async def after_cell(self, cell: CellInfo, result: CellResult) -> None:
        for plugin in self.plugins:
            await self._guard(plugin, "after_cell", cell.run_id, plugin.after_cell(cell, result))

    async def on_event(self, event: Event) -> None:
        if isinstance(event, PluginFailed):
            return  # reporting a failure must not feed back into the plugins that failed
        for plugin in self._on_event:
            await self._guard(plugin, "on_event", event.run_id, plugin.on_event(event))


def describe(plugins: Sequence[Plugin]) -> list[dict[str, Any]]:
    return [{"name": p.name, "required": p.required} for p in plugins]
