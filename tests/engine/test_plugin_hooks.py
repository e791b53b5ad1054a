"""The plugin chain calls a plugin only for the hooks it overrides, with the same effect."""

from __future__ import annotations

from collections.abc import Sequence

from rlm_engine.events import Event, IterationStarted
from rlm_engine.plugins.base import ModelCallInfo, Plugin
from rlm_engine.plugins.chain import PluginChain
from rlm_engine.types import Completion, Message


async def _drop(event: Event) -> None:
    return None


class Upper(Plugin):
    name = "upper"

    def __init__(self) -> None:
        self.seen: list[tuple[Message, ...]] = []

    async def before_model_call(self, call: ModelCallInfo) -> Sequence[Message] | None:
        self.seen.append(call.messages)
        return [Message(m.role, m.content.upper()) for m in call.messages]


class Watch(Plugin):
    name = "watch"

    def __init__(self) -> None:
        self.events: list[str] = []
        self.seen: list[ModelCallInfo] = []
        self.after: list[str] = []

    async def before_model_call(self, call: ModelCallInfo) -> Sequence[Message] | None:
        self.seen.append(call)
        return None

    async def after_model_call(self, call: ModelCallInfo, completion: Completion) -> None:
        self.after.append(completion.text)

    async def on_event(self, event: Event) -> None:
        self.events.append(event.type)


def _call() -> ModelCallInfo:
    return ModelCallInfo("r", "n", 1, "sub", "sim/m", (Message("user", "hi"),))


async def test_hooks_reach_the_plugins_that_define_them_in_order() -> None:
    upper, watch = Upper(), Watch()
    chain = PluginChain([Plugin(), upper, watch], _drop)
    call = _call()
    messages = await chain.before_model_call(call)
    assert messages == (Message("user", "HI"),)
    assert upper.seen == [call.messages]
    # A later plugin sees the amended messages.
    assert watch.seen[0].messages == (Message("user", "HI"),)
    await chain.after_model_call(call, Completion(text="done", model="sim/m"))
    assert watch.after == ["done"]
    assert chain.observes_events
    await chain.on_event(IterationStarted(run_id="r", iteration=1))
    assert watch.events == ["iteration_started"]


async def test_unchanged_messages_pass_the_call_itself() -> None:
    watch = Watch()
    chain = PluginChain([watch], _drop)
    call = _call()
    assert await chain.before_model_call(call) == call.messages
    assert watch.seen == [call]


async def test_plugins_without_event_hooks_are_not_observers() -> None:
    chain = PluginChain([Plugin(), Upper()], _drop)
    assert not chain.observes_events
    await chain.on_event(IterationStarted(run_id="r", iteration=1))


async def test_a_hook_set_on_the_instance_is_called() -> None:
    got: list[str] = []

    async def on_event(event: Event) -> None:
        got.append(event.type)

    plugin = Plugin()
    plugin.on_event = on_event  # type: ignore[method-assign]
    chain = PluginChain([plugin], _drop)
    assert chain.observes_events
    await chain.on_event(IterationStarted(run_id="r", iteration=1))
    assert got == ["iteration_started"]
