"""OpenTelemetry spans for runs, following the GenAI semantic conventions.

Built from the event stream alone: every event names its node in the call tree
("r/3/4"), and a node's parent is its path minus the last step, so spans nest exactly
as the tree does (run > cell > sub-call or child run > ...). Only ``opentelemetry-api``
is needed here; an SDK (the ``otel`` extra) decides where spans go.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from rlm_engine.events import (
    CellBlocked,
    CellFinished,
    CellStarted,
    Event,
    ModelCallFailed,
    ModelCallFinished,
    ModelCallStarted,
    RunFinished,
    RunStarted,
    SubcallFinished,
    SubcallStarted,
)
from rlm_engine.plugins.base import ModelCallInfo, Plugin
from rlm_engine.types import Completion, Message

ROOT = "r"


def _ns(ts: float) -> int:
    return int(ts * 1_000_000_000)


def _parent(node_id: str) -> str:
    return node_id.rsplit("/", 1)[0] if "/" in node_id else ROOT


def _split_model(model: str) -> tuple[str, str]:
    provider, _, name = model.partition("/")
    return (provider, name) if name else ("", model)


class TracingPlugin(Plugin):
    """Emits spans: ``invoke_agent`` per run and child run, ``chat {model}`` per model call,
    ``execute_tool`` per cell and tool call. Message content is recorded only with
    ``capture_content=True``."""

    name = "tracing"

    def __init__(
        self,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
        *,
        capture_content: bool = False,
    ) -> None:
        self._tracer = trace.get_tracer("rlm_engine", tracer_provider=tracer_provider)
        meter = metrics.get_meter("rlm_engine", meter_provider=meter_provider)
        self._tokens = meter.create_histogram(
            "gen_ai.client.token.usage", unit="{token}", description="tokens per model call"
        )
        self.capture_content = capture_content
        self._spans: dict[tuple[str, str], Span] = {}
        self._ends: dict[tuple[str, str], int] = {}
        self._handlers: dict[type[Any], Callable[[Any], None]] = {
            RunStarted: self._run_started,
            RunFinished: self._run_finished,
            CellStarted: self._cell_started,
            CellFinished: self._cell_finished,
            CellBlocked: self._cell_blocked,
            SubcallStarted: self._subcall_started,
            SubcallFinished: self._subcall_finished,
            ModelCallStarted: self._model_started,
            ModelCallFinished: self._model_finished,
            ModelCallFailed: self._model_failed,
        }

    # -- span bookkeeping -------------------------------------------------------------------

    def _start(self, run_id: str, node_id: str, name: str, ts: float, **attrs: Any) -> Span:
        parent = self._find_parent(run_id, node_id)
        context = trace.set_span_in_context(parent) if parent is not None else None
        kind = SpanKind.CLIENT if name.startswith("chat") else SpanKind.INTERNAL
        span = self._tracer.start_span(
            name,
            context=context,
            kind=kind,
            start_time=_ns(ts),
            attributes={k: v for k, v in attrs.items() if v is not None},
        )
        self._spans[(run_id, node_id)] = span
        return span

    def _find_parent(self, run_id: str, node_id: str) -> Span | None:
        if node_id == ROOT:
            return None
        path = _parent(node_id)
        while True:
            span = self._spans.get((run_id, path))
            if span is not None or path == ROOT:
                return span
            path = _parent(path)

    def _end(self, run_id: str, node_id: str, ts: float, error: str | None = None) -> None:
        span = self._spans.pop((run_id, node_id), None)
        if span is None:
            return
        if error is not None:
            span.set_status(Status(StatusCode.ERROR, error))
            span.set_attribute("error.type", error.split(":", 1)[0][:100])
        span.end(end_time=_ns(ts))

    # -- hooks ------------------------------------------------------------------------------

    async def on_event(self, event: Event) -> None:
        handler = self._handlers.get(type(event))
        if handler is not None:
            handler(event)

    async def before_model_call(self, call: ModelCallInfo) -> Sequence[Message] | None:
        return None

    async def after_model_call(self, call: ModelCallInfo, completion: Completion) -> None:
        key = (call.run_id, call.node_id)
        span = self._spans.get(key)
        if span is None:
            return
        if self.capture_content:
            messages = [{"role": m.role, "content": m.content} for m in call.messages]
            span.set_attribute("gen_ai.input.messages", json.dumps(messages))
            output = [{"role": "assistant", "content": completion.text}]
            span.set_attribute("gen_ai.output.messages", json.dumps(output))
        end = self._ends.pop(key, None)
        self._spans.pop(key, None)
        span.end(end_time=end)

    # -- event handlers ---------------------------------------------------------------------

    def _run_started(self, e: RunStarted) -> None:
        provider, model = _split_model(e.model)
        self._start(
            e.run_id,
            ROOT,
            "invoke_agent rlm",
            e.ts,
            **{
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.agent.name": "rlm",
                "gen_ai.provider.name": provider or None,
                "gen_ai.request.model": model,
                "gen_ai.conversation.id": e.run_id,
                "rlm.depth": 0,
            },
        )

    def _run_finished(self, e: RunFinished) -> None:
        span = self._spans.get((e.run_id, ROOT))
        if span is not None:
            span.set_attribute("gen_ai.usage.input_tokens", e.input_tokens)
            span.set_attribute("gen_ai.usage.output_tokens", e.output_tokens)
            span.set_attribute("rlm.stop_reason", e.stop_reason)
            span.set_attribute("rlm.iterations", e.iterations)
        error = e.detail or e.stop_reason if e.stop_reason == "error" else None
        self._end(e.run_id, ROOT, e.ts, error)
        for key in [k for k in self._spans if k[0] == e.run_id]:
            self._end(*key, e.ts, "run ended first")

    def _cell_span(self, e: CellStarted | CellBlocked, **attributes: Any) -> Span:
        return self._start(
            e.run_id,
            e.node_id,
            "execute_tool repl",
            e.ts,
            **{
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": "repl",
                "rlm.depth": e.depth,
                "rlm.iteration": e.iteration,
                **attributes,
            },
        )

    def _cell_started(self, e: CellStarted) -> None:
        self._cell_span(e)

    def _cell_finished(self, e: CellFinished) -> None:
        span = self._spans.get((e.run_id, e.node_id))
        if span is not None:
            span.set_attribute("rlm.cell.status", e.status)
            span.set_attribute("rlm.cell.output_chars", e.output_chars)
        error = None if e.status == "ok" else f"{e.status}: {(e.error or '')[:200]}"
        self._end(e.run_id, e.node_id, e.ts, error)

    def _cell_blocked(self, e: CellBlocked) -> None:
        span = self._cell_span(e, **{"rlm.cell.blocked_by": e.plugin})
        span.set_attribute("rlm.cell.status", "blocked")
        self._end(e.run_id, e.node_id, e.ts, f"blocked: {e.reason}")

    def _subcall_started(self, e: SubcallStarted) -> None:
        if e.kind == "llm":
            return  # the model call itself is the span
        name, op = (
            ("invoke_agent rlm", "invoke_agent")
            if e.kind == "rlm"
            else ("execute_tool tool", "execute_tool")
        )
        self._start(
            e.run_id,
            e.node_id,
            name,
            e.ts,
            **{"gen_ai.operation.name": op, "rlm.depth": e.depth + 1, "rlm.subcall": e.kind},
        )

    def _subcall_finished(self, e: SubcallFinished) -> None:
        if e.kind != "llm":
            self._end(e.run_id, e.node_id, e.ts, None if e.ok else e.error or "failed")

    def _model_started(self, e: ModelCallStarted) -> None:
        provider, model = _split_model(e.model)
        self._start(
            e.run_id,
            e.node_id,
            f"chat {model}",
            e.ts,
            **{
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": provider or None,
                "gen_ai.request.model": model,
                "rlm.role": e.role,
                "rlm.depth": e.depth,
            },
        )

    def _model_finished(self, e: ModelCallFinished) -> None:
        key = (e.run_id, e.node_id)
        span = self._spans.get(key)
        if span is None:
            return
        _, model = _split_model(e.model)
        span.set_attribute("gen_ai.response.model", model)
        span.set_attribute("gen_ai.usage.input_tokens", e.input_tokens)
        span.set_attribute("gen_ai.usage.output_tokens", e.output_tokens)
        if e.finish_reason:
            span.set_attribute("gen_ai.response.finish_reasons", [e.finish_reason])
        if e.cost_usd is not None:
            span.set_attribute("rlm.cost_usd", e.cost_usd)
        if e.from_cache:
            span.set_attribute("rlm.from_cache", True)
        common = {"gen_ai.operation.name": "chat", "gen_ai.request.model": model}
        self._tokens.record(e.input_tokens, {**common, "gen_ai.token.type": "input"})
        self._tokens.record(e.output_tokens, {**common, "gen_ai.token.type": "output"})
        # The span ends in after_model_call, which can still add the reply's content.
        self._ends[key] = _ns(e.ts)

    def _model_failed(self, e: ModelCallFailed) -> None:
        self._end(e.run_id, e.node_id, e.ts, f"{e.kind or 'failed'}: {e.error}")
