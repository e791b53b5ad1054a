"""One model call with its accounting: budget, call-tree node and events."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from rlm_engine.engine.closing import failure_text
from rlm_engine.engine.journal import (
    NondeterminismError,
    RecordedCall,
    journaled_request,
    request_hash,
)
from rlm_engine.engine.state import TreeState
from rlm_engine.engine.tree import CallNode
from rlm_engine.errors import ProviderError
from rlm_engine.events import (
    CallRole,
    ModelCallFailed,
    ModelCallFinished,
    ModelCallStarted,
    ModelFallback,
    Origin,
)
from rlm_engine.lm.base import LanguageModel
from rlm_engine.plugins.base import ModelCallInfo
from rlm_engine.types import Completion, Message, ModelSettings


def _replayed(recorded: RecordedCall, wanted: str, node: CallNode) -> Completion:
    if recorded.request_hash != wanted:
        raise NondeterminismError(
            f"replay diverged at {node.id}: the request differs from the journaled one, so "
            "the recorded reply cannot be reused"
        )
    node.detail["replayed"] = True
    return recorded.completion()


async def _account(
    state: TreeState,
    common: Origin,
    role: CallRole,
    name: str,
    call_id: str,
    node: CallNode,
    completion: Completion,
    started: float,
) -> None:
    """Record a reply on its node and in the budget, and emit its events."""
    for note in completion.fallbacks:
        node.detail.setdefault("fallbacks", []).append(
            {"model": note.model, "kind": note.kind, "error": note.error}
        )
        await state.emit(
            ModelFallback(
                **common,
                role=role,
                from_model=note.model,
                to_model=completion.model,
                kind=note.kind,
                error=note.error,
            )
        )
    if completion.from_cache:
        node.detail["from_cache"] = True
    node.usage = completion.usage
    node.cost_usd = completion.cost_usd
    node.latency_s = completion.latency_s or (time.monotonic() - started)
    node.detail["response_chars"] = len(completion.text)
    state.budget.record(completion)
    await state.emit(
        ModelCallFinished(
            **common,
            role=role,
            model=completion.model or name,
            call_id=call_id,
            input_tokens=completion.usage.input_tokens,
            output_tokens=completion.usage.output_tokens,
            cached_tokens=completion.usage.cached_tokens,
            cost_usd=completion.cost_usd,
            latency_s=node.latency_s,
            response_chars=len(completion.text),
            finish_reason=completion.finish_reason,
            from_cache=completion.from_cache,
        )
    )


async def call_model(
    state: TreeState,
    model: LanguageModel,
    messages: Sequence[Message],
    *,
    role: CallRole,
    node: CallNode,
    depth: int,
    settings: ModelSettings | None = None,
    slots: asyncio.Semaphore | None = None,
) -> Completion:
    """Call ``model`` and record the call on ``node`` (which must be fresh for this call).

    One of ``slots`` (by default the run's ``max_concurrency`` slots, which every model
    request of the run shares: root turns at every depth, sub-calls, digests and capsules)
    is held while the call is prepared and made, and given back once its reply's journal
    write is queued, before that write is waited for: waiting for the journal holds no
    concurrency slot. A slot is held for one
    request and never while anything waits for other work (a parent's cell waiting on its
    children holds none), so the shared bound cannot deadlock a recursion tree."""
    # A wrapped model answers ``name`` through every wrapper (cache, retry, price): read
    # it once, not once per use.
    name = model.name
    info = ModelCallInfo(
        run_id=state.run_id,
        node_id=node.id,
        depth=depth,
        role=role,
        model=name,
        messages=tuple(messages),
        emit=state.emit,
    )
    common = Origin(run_id=state.run_id, node_id=node.id, depth=depth)
    journal = state.journal
    slot = slots if slots is not None else state.sub_call_slots
    await slot.acquire()
    try:
        messages = await state.plugins.before_model_call(info)
        call_id = state.next_call_id()
        node.model = name
        node.detail["call_id"] = call_id
        prompt_chars = sum(len(m.content) for m in messages)
        node.detail["prompt_chars"] = prompt_chars
        await state.emit(
            ModelCallStarted(
                **common, role=role, model=name, call_id=call_id, prompt_chars=prompt_chars
            )
        )
        started = time.monotonic()
        wanted = request_hash(name, messages, settings) if journal is not None else ""
        recorded = await journal.recorded_call(node.id) if journal is not None else None
        try:
            if recorded is not None:
                completion = _replayed(recorded, wanted, node)
            else:
                completion = await model.complete(messages, settings)
        except BaseException as exc:
            # Whatever ends the call (a cancellation too) closes its ModelCallStarted;
            # the exception goes on as it was.
            node.status = "error"
            node.latency_s = time.monotonic() - started
            node.detail["error"] = failure_text(exc)
            await state.emit(
                ModelCallFailed(
                    **common,
                    role=role,
                    model=name,
                    call_id=call_id,
                    error=failure_text(exc),
                    kind=exc.kind if isinstance(exc, ProviderError) else None,
                )
            )
            raise
        # Counted as finished while its slot is still held: the call is over at the
        # provider, and a live count of calls in flight never exceeds the slots.
        await _account(state, common, role, name, call_id, node, completion, started)
    except BaseException:
        slot.release()
        raise
    # The slot goes back in the loop's next step, after the journal write below is queued
    # (once the store is open, that happens before this coroutine first waits): the call it
    # wakes is sent after the write, which a local store commits first (its writer's settle).
    asyncio.get_running_loop().call_soon(slot.release)
    if recorded is None and journal is not None:
        # Durable before the caller sees the reply: a crash from here on never pays for
        # this call again.
        request = journaled_request(role, messages)
        await journal.record_call(node.id, role, wanted, completion, request=request)
    await state.plugins.after_model_call(info, completion)
    return completion
