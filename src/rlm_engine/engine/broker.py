"""The sub-call broker: serves what code in the REPL asks of the host.

Every helper the REPL offers (``llm_query``, ``rlm_query``, tools, ``memory``) arrives
here as one RPC. The broker enforces budgets, bounds fan-out with a semaphore, records
each call in the call tree and emits events.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, cast

from rlm_engine.engine.calls import call_model
from rlm_engine.engine.caps import check_prompt
from rlm_engine.engine.closing import failure_text
from rlm_engine.engine.state import TreeState
from rlm_engine.engine.tree import CallNode
from rlm_engine.errors import RLMError
from rlm_engine.events import Origin, SubcallFinished, SubcallKind, SubcallStarted
from rlm_engine.lm.base import LanguageModel
from rlm_engine.lm.context_windows import context_window_tokens
from rlm_engine.types import Message

# Starts a child RLM on (prompt, context) under the given node and returns its answer.
ChildSpawner = Callable[[str, Any, CallNode], Awaitable[str]]
Method = Callable[[Mapping[str, Any]], Awaitable[Any]]


class BrokerError(RLMError):
    """A request from the REPL was malformed; the message goes back into the cell."""


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise BrokerError(f"{name} must be a str, got {type(value).__name__}")
    return value


def _texts(value: Any, name: str) -> list[str]:
    if not isinstance(value, list):
        raise BrokerError(f"{name} must be a list of str, got {type(value).__name__}")
    items = cast(list[Any], value)
    return [_text(v, f"{name}[{i}]") for i, v in enumerate(items)]


def _context_as_text(context: Any) -> str:
    if context is None:
        return ""
    if isinstance(context, str):
        return context
    return json.dumps(context, ensure_ascii=False, default=str)


class Broker:
    """Host side of the REPL's helpers for one run (root or child)."""

    def __init__(
        self,
        state: TreeState,
        *,
        depth: int,
        spawn_child: ChildSpawner,
        current_node: Callable[[], CallNode],
    ) -> None:
        self._state = state
        self._depth = depth
        self._spawn_child = spawn_child
        self._current_node = current_node
        self._methods: dict[str, Method] = {
            "llm_query": self._llm_query,
            "llm_query_batched": self._llm_query_batched,
            "rlm_query": self._rlm_query,
            "rlm_query_batched": self._rlm_query_batched,
            "tool": self._tool,
            "memory_get": self._memory_get,
            "memory_set": self._memory_set,
            "memory_keys": self._memory_keys,
        }
        # The tasks serving a host call now: a cell that ends early (timed out, killed,
        # cancelled) has its calls cancelled and waited for, so that each closes its
        # events before the cell's own closing event.
        self._in_flight: set[asyncio.Task[Any]] = set()

    @property
    def can_recurse(self) -> bool:
        return self._depth + 1 < self._state.config.max_depth

    async def __call__(self, method: str, params: Mapping[str, Any]) -> Any:
        handler = self._methods.get(method)
        if handler is None:
            raise BrokerError(f"unknown host method {method!r}")
        if self._state.journal is not None:
            # Nothing the cell asks for is done before its start is durable.
            await self._state.journal.queued_durable()
        task = asyncio.current_task()
        if task is None:
            return await handler(params)
        self._in_flight.add(task)
        try:
            return await handler(params)
        finally:
            self._in_flight.discard(task)

    async def cancel_calls(self) -> None:
        """Cancel the host calls in flight and wait until each has ended (its sub-call and
        model-call events closed). A call served by the caller's own task (a sandbox that
        calls the host inline) is left to unwind with it."""
        current = asyncio.current_task()
        calls = [task for task in self._in_flight if task is not current and not task.done()]
        for task in calls:
            task.cancel()
        await asyncio.gather(*calls, return_exceptions=True)

    def _model(self, name: Any) -> LanguageModel:
        if name is None:
            return self._state.sub_model
        return self._state.resolve_model(_text(name, "model"))

    def _check_prompt(self, prompt: str, model: LanguageModel, what: str) -> None:
        """Hold a prompt to the byte cap and the model's window before anything is sent.

        Here, on the host, so that a forged frame that skips the REPL's helpers is held
        to the same caps."""
        config = self._state.config
        window = config.sub_context_tokens or context_window_tokens(model.name)
        check_prompt(prompt, max_bytes=config.max_prompt_bytes, window_tokens=window, what=what)

    async def _tracked(
        self,
        kind: SubcallKind,
        prompt_chars: int,
        work: Callable[[CallNode], Awaitable[str]],
        *,
        reserved: bool = False,
    ) -> str:
        """Run one sub-call under the current cell's node with budget and events.

        ``reserved``: its batch already took its share of the sub-call budget."""
        state = self._state
        if kind != "tool" and not reserved:  # tools are the user's code; model work counts
            state.budget.take_sub_call()
        node = self._current_node().add(kind, label=f"{kind} sub-call")
        call_id = state.next_call_id()
        common = Origin(run_id=state.run_id, node_id=node.id, depth=self._depth)
        await state.emit(
            SubcallStarted(**common, call_id=call_id, kind=kind, prompt_chars=prompt_chars)
        )
        try:
            result = await work(node)
        except BaseException as exc:
            # A tool or a child fails with anything, or the call is cancelled (its cell
            # timed out, the run stopped): the call is over either way, and says so before
            # the exception goes on.
            node.status = "error"
            await state.emit(
                SubcallFinished(
                    **common,
                    call_id=call_id,
                    kind=kind,
                    ok=False,
                    result_chars=0,
                    error=failure_text(exc),
                )
            )
            raise
        await state.emit(
            SubcallFinished(**common, call_id=call_id, kind=kind, ok=True, result_chars=len(result))
        )
        return result

    async def _plain_call(
        self, prompt: str, model: LanguageModel, *, reserved: bool = False
    ) -> str:
        async def work(node: CallNode) -> str:
            # The slot bounds calls at the provider; it is not held while the reply is
            # journaled (the journal's group commit serves every finished call at once).
            completion = await call_model(
                self._state,
                model,
                [Message("user", prompt)],
                role="sub",
                node=node,
                depth=self._depth + 1,
                settings=self._state.config.sub_settings,
                slots=self._state.sub_call_slots,
            )
            return completion.text

        return await self._tracked("llm", len(prompt), work, reserved=reserved)

    async def _llm_query(self, params: Mapping[str, Any]) -> str:
        prompt = _text(params.get("prompt"), "prompt")
        model = self._model(params.get("model"))
        self._check_prompt(prompt, model, "llm_query")
        return await self._plain_call(prompt, model)

    async def _gather(self, calls: Sequence[Awaitable[str]]) -> list[str]:
        """Run calls concurrently; one failure becomes an error string in its slot instead
        of discarding the answers of every other call in the batch."""
        results = await asyncio.gather(*calls, return_exceptions=True)
        out: list[str] = []
        for item in results:
            if isinstance(item, BaseException):
                if not isinstance(item, Exception):
                    raise item
                out.append(f"[error: {type(item).__name__}: {item}]")
            else:
                out.append(item)
        return out

    async def _llm_query_batched(self, params: Mapping[str, Any]) -> list[str]:
        prompts = _texts(params.get("prompts"), "prompts")
        model = self._model(params.get("model"))
        # Every prompt is checked and the whole batch reserved before the first request:
        # a refused batch costs nothing.
        for i, prompt in enumerate(prompts):
            self._check_prompt(prompt, model, f"llm_query_batched (prompts[{i}])")
        self._state.budget.take_sub_calls(len(prompts))
        return await self._gather([self._plain_call(p, model, reserved=True) for p in prompts])

    def _check_child(self, prompt: str, context: Any, what: str) -> str | None:
        """The plain prompt a child becomes at the depth limit (checked), else ``None``."""
        if self.can_recurse:  # a child's window is its own root's: only the byte cap here
            max_bytes = self._state.config.max_prompt_bytes
            check_prompt(prompt, max_bytes=max_bytes, window_tokens=None, what=what)
            return None
        text = _context_as_text(context)
        full = f"{prompt}\n\nContext:\n{text}" if text else prompt
        self._check_prompt(full, self._state.sub_model, what)
        return full

    async def _child(
        self, prompt: str, context: Any, plain: str | None, *, reserved: bool = False
    ) -> str:
        if plain is not None:
            return await self._plain_call(plain, self._state.sub_model, reserved=reserved)

        async def work(node: CallNode) -> str:
            # Per-depth slots: a parent waiting on its children never holds theirs.
            async with self._state.children.slot(self._depth + 1):
                return await self._spawn_child(prompt, context, node)

        return await self._tracked("rlm", len(prompt), work, reserved=reserved)

    async def _rlm_query(self, params: Mapping[str, Any]) -> str:
        prompt = _text(params.get("prompt"), "prompt")
        context = params.get("context")
        plain = self._check_child(prompt, context, "rlm_query")
        if plain is None:
            # Counted before the sub-call is taken: if that is refused, the sub-call budget
            # is spent and no child can start again, so the count no longer matters.
            self._state.children.admit(1, "rlm_query")
        return await self._child(prompt, context, plain)

    async def _rlm_query_batched(self, params: Mapping[str, Any]) -> list[str]:
        prompts = _texts(params.get("prompts"), "prompts")
        raw_contexts = params.get("contexts")
        if raw_contexts is None:
            contexts: list[Any] = [None] * len(prompts)
        elif isinstance(raw_contexts, list) and len(cast(list[Any], raw_contexts)) == len(prompts):
            contexts = cast(list[Any], raw_contexts)
        else:
            raise BrokerError("contexts must be None or a list as long as prompts")
        pairs = list(zip(prompts, contexts, strict=True))
        plains = [
            self._check_child(p, c, f"rlm_query_batched (prompts[{i}])")
            for i, (p, c) in enumerate(pairs)
        ]
        starts = sum(plain is None for plain in plains)
        # Checked before the sub-call budget is taken and counted after, so a refusal by
        # either leaves the other as it was.
        self._state.children.check(starts, "rlm_query_batched")
        self._state.budget.take_sub_calls(len(pairs))
        self._state.children.admit(starts, "rlm_query_batched")
        return await self._gather(
            [
                self._child(p, c, plain, reserved=True)
                for (p, c), plain in zip(pairs, plains, strict=True)
            ]
        )

    async def _tool(self, params: Mapping[str, Any]) -> Any:
        name = _text(params.get("name"), "name")
        tool = self._state.tools.get(name)
        if tool is None:
            raise BrokerError(f"no tool named {name!r}")
        args: object = params.get("args") or []
        kwargs: object = params.get("kwargs") or {}
        if not isinstance(args, list) or not isinstance(kwargs, dict):
            raise BrokerError("tool args must be a list and kwargs a dict")
        call_args = cast(list[Any], args)
        call_kwargs = cast(dict[str, Any], kwargs)

        async def work(node: CallNode) -> str:
            node.label = f"tool {name}"
            outcome = tool(*call_args, **call_kwargs)
            if inspect.isawaitable(outcome):
                outcome = await outcome
            node.detail["result"] = outcome
            return json.dumps(outcome, default=str)

        encoded = await self._tracked("tool", len(json.dumps(call_args, default=str)), work)
        return json.loads(encoded)

    async def _memory_get(self, params: Mapping[str, Any]) -> Any:
        key = _text(params.get("key"), "key")
        if key not in self._state.memory:
            raise KeyError(key)
        return self._state.memory[key]

    async def _memory_set(self, params: Mapping[str, Any]) -> None:
        self._state.memory[_text(params.get("key"), "key")] = params.get("value")

    async def _memory_keys(self, params: Mapping[str, Any]) -> list[str]:
        return sorted(self._state.memory)
