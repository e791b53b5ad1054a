"""Spans from a run with sub-calls and a child RLM, checked with an in-memory exporter."""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from rlm_engine import RLM
from rlm_engine.lm.scripted import ScriptedModel
from rlm_engine.plugins import default_plugins
from rlm_engine.plugins.tracing import TracingPlugin
from rlm_engine.types import Message


def fence(code: str) -> str:
    return f"```repl\n{code}\n```"


def root_policy(messages: Sequence[Message]) -> str:
    turn = sum(m.role == "assistant" for m in messages)
    if "Question: Count the vowels" in messages[1].content:
        return [
            fence("n = sum(c in 'aeiou' for c in context)\nprint(llm_query('ok?'))"),
            fence("FINAL(n)"),
        ][min(turn, 1)]
    return [
        fence("a = llm_query_batched(['one', 'two'])\nb = rlm_query('Count the vowels', 'banana')"),
        fence("FINAL(b)"),
    ][min(turn, 1)]


def run_traced(capture: bool = False) -> tuple[list[ReadableSpan], InMemoryMetricReader, str]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    tracing = TracingPlugin(
        provider, MeterProvider(metric_readers=[reader]), capture_content=capture
    )
    root = ScriptedModel(root_policy, name="scripted/root")
    sub = ScriptedModel(lambda m: "yes", name="scripted/sub")
    with RLM(root, sub, max_depth=2, plugins=[*default_plugins(), tracing]) as rlm:
        result = rlm.run("Outer question")
    assert result.answer == "3"
    return list(exporter.get_finished_spans()), reader, result.run_id


def parent_of(span: ReadableSpan, spans: list[ReadableSpan]) -> ReadableSpan | None:
    if span.parent is None:
        return None
    return next(s for s in spans if s.context.span_id == span.parent.span_id)


def test_spans_nest_like_the_call_tree_and_carry_usage() -> None:
    spans, reader, run_id = run_traced()
    roots = [s for s in spans if s.parent is None]
    assert [s.name for s in roots] == ["invoke_agent rlm"]
    run = roots[0]
    assert run.attributes is not None and run.attributes["gen_ai.conversation.id"] == run_id
    assert len({s.context.trace_id for s in spans}) == 1

    chats = [s for s in spans if s.name.startswith("chat ")]
    for chat in chats:
        attrs = chat.attributes or {}
        assert attrs["gen_ai.operation.name"] == "chat"
        assert attrs["gen_ai.provider.name"] == "scripted"
        assert attrs["gen_ai.usage.input_tokens"] > 0  # type: ignore[operator]
        assert "gen_ai.usage.output_tokens" in attrs
        assert "gen_ai.input.messages" not in attrs  # content is off by default

    root_turns = [s for s in chats if parent_of(s, spans) is run]
    assert len(root_turns) == 2
    outer_cell = next(
        s for s in spans if s.name == "execute_tool repl" and parent_of(s, spans) is run
    )
    sub_chats = [s for s in chats if parent_of(s, spans) is outer_cell]
    assert len(sub_chats) == 2 and all((s.attributes or {})["rlm.role"] == "sub" for s in sub_chats)
    child = next(s for s in spans if s.name == "invoke_agent rlm" and s is not run)
    assert parent_of(child, spans) is outer_cell
    assert (child.attributes or {})["rlm.depth"] == 1
    child_cells = [
        s for s in spans if s.name == "execute_tool repl" and parent_of(s, spans) is child
    ]
    assert child_cells
    child_sub = [s for s in chats if parent_of(s, spans) in child_cells]
    assert len(child_sub) == 1 and (child_sub[0].attributes or {})["rlm.depth"] == 2
    for span in spans:  # children start and end inside their parents
        parent = parent_of(span, spans)
        if parent is not None:
            assert parent.start_time <= span.start_time  # type: ignore[operator]
            assert span.end_time <= parent.end_time  # type: ignore[operator]

    data = reader.get_metrics_data()
    assert data is not None
    names = {m.name for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    assert "gen_ai.client.token.usage" in names


def test_content_is_recorded_only_when_enabled() -> None:
    spans, _, _ = run_traced(capture=True)
    chat = next(s for s in spans if s.name.startswith("chat "))
    attrs = chat.attributes or {}
    assert "Outer question" in str(attrs["gen_ai.input.messages"])
    assert "gen_ai.output.messages" in attrs
