"""The event vocabulary: every event serialises, parses back through the union, and is
described by the published JSON schema, as the store keeps it."""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from pydantic import TypeAdapter, ValidationError

from rlm_engine import events
from rlm_engine.events import EVENT_SCHEMA_VERSION, Event, event_json_schema
from rlm_engine.store import NewRun, open_store

ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)
ORIGIN = events.Origin(run_id="r1", node_id="r/1", depth=1)


def _members() -> list[type[events._Event]]:  # pyright: ignore[reportPrivateUsage]
    union = typing.get_args(Event)[0]
    return list(typing.get_args(union))


def _validator() -> Any:
    """A JSON-schema validator of the published schema (as any client would use it)."""
    return jsonschema.Draft202012Validator(event_json_schema())


def _type_name(cls: type[Any]) -> str:
    return cls.model_fields["type"].default


# One event of every type, with every field set, as an engine emits them.
SAMPLES: list[Event] = [
    events.RunStarted(**ORIGIN, question="q", model="m/a", sub_model="m/b"),
    events.ContextLoaded(**ORIGIN, context_type="str", total_chars=10, files=0),
    events.IterationStarted(**ORIGIN, iteration=1),
    events.IterationFinished(**ORIGIN, iteration=1, status="failed", error="cancelled"),
    events.ModelCallStarted(**ORIGIN, role="root", model="m/a", call_id="c1", prompt_chars=5),
    events.ModelCallFinished(
        **ORIGIN,
        role="sub",
        model="m/b",
        call_id="c1",
        input_tokens=3,
        output_tokens=4,
        cached_tokens=0,
        cost_usd=None,
        latency_s=0.1,
        response_chars=9,
        finish_reason="stop",
    ),
    events.ModelCallFailed(
        **ORIGIN, role="digest", model="m/b", call_id="c2", error="boom", kind="server"
    ),
    events.ModelFallback(
        **ORIGIN, role="capsule", from_model="m/a", to_model="m/b", kind="rate_limit", error="429"
    ),
    events.ContextMetrics(
        **ORIGIN,
        role="root",
        model="m/a",
        message_count=2,
        estimated_tokens=10,
        largest_message_chars=30,
    ),
    events.PluginFailed(**ORIGIN, plugin="p", hook="on_event", error="bad"),
    events.CellStarted(**ORIGIN, iteration=1, cell_index=0, code="print(1)", instruction="x"),
    events.CellFinished(
        **ORIGIN,
        iteration=2,
        cell_index=0,
        status="timeout",
        output="",
        output_chars=0,
        duration_s=1.0,
        error="deadline",
    ),
    events.CellBlocked(
        **ORIGIN, iteration=1, cell_index=1, reason="no", plugin="guard", details=["a"]
    ),
    events.SubcallStarted(**ORIGIN, call_id="c3", kind="rlm", prompt_chars=7),
    events.SubcallFinished(
        **ORIGIN, call_id="c3", kind="rlm", ok=False, result_chars=0, error="child failed"
    ),
    events.DigestStarted(**ORIGIN, iteration=1, cell_index=0, output_chars=90_000),
    events.DigestFinished(
        **ORIGIN, iteration=1, cell_index=0, output_chars=90_000, digest_chars=400
    ),
    events.SandboxRestarted(**ORIGIN, reason="killed"),
    events.Final(**ORIGIN, answer="42", fields={"n": 42}),
    events.RunFinished(
        run_id="r1",
        stop_reason="final",
        iterations=3,
        input_tokens=1,
        output_tokens=2,
        cost_usd=0.5,
        duration_s=1.5,
    ),
    events.ErrorEvent(**ORIGIN, message="bad", where="run"),
]


def test_every_event_type_is_unique_and_in_the_union() -> None:
    members = _members()
    names = [_type_name(m) for m in members]
    assert len(names) == len(set(names))
    declared = {
        obj
        for obj in vars(events).values()
        if isinstance(obj, type) and issubclass(obj, events._Event) and obj is not events._Event  # pyright: ignore[reportPrivateUsage]
    }
    assert declared == set(members)
    assert {type(sample) for sample in SAMPLES} == declared, "one sample per event type"


def test_every_event_says_its_schema_version() -> None:
    for sample in SAMPLES:
        assert sample.schema_version == EVENT_SCHEMA_VERSION == 1
        assert sample.model_dump()["schema_version"] == EVENT_SCHEMA_VERSION


def test_events_round_trip_through_json() -> None:
    for event in SAMPLES:
        parsed = ADAPTER.validate_json(event.model_dump_json())
        assert parsed == event
        assert type(parsed) is type(event)


def test_an_event_stored_before_the_schema_version_reads_as_version_1() -> None:
    body = SAMPLES[2].model_dump(mode="json")
    del body["schema_version"]
    assert ADAPTER.validate_python(body).schema_version == 1


def test_the_json_schema_covers_the_whole_union() -> None:
    schema = event_json_schema()
    mapping = schema["discriminator"]["mapping"]
    assert set(mapping) == {_type_name(m) for m in _members()}
    assert len(schema["oneOf"]) == len(_members())
    # Serialised events carry every field: the schema says each is always there.
    run_finished = schema["$defs"]["RunFinished"]
    assert set(run_finished["required"]) == set(events.RunFinished.model_fields)


def test_the_json_schema_validates_a_stored_event_of_each_type(tmp_path: Path) -> None:
    store = open_store(None, tmp_path)
    try:
        store.create_run(NewRun(run_id="r1", question="q"))
        store.append_events(SAMPLES)
        stored = store.list_events("r1")
    finally:
        store.close()
    assert [e.type for e in stored] == [e.type for e in SAMPLES]
    validator = _validator()
    for row in stored:
        validator.validate(row.body)  # raises, naming the field, if the schema is wrong
        assert row.body["schema_version"] == EVENT_SCHEMA_VERSION


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("stop_reason", "gave_up"),  # RunFinished: a StopReason
        ("schema_version", "one"),
    ],
)
def test_the_json_schema_refuses_what_the_models_refuse(field: str, value: object) -> None:
    body = SAMPLES[-2].model_dump(mode="json") | {field: value}
    assert not _validator().is_valid(body)
    with pytest.raises(ValidationError):
        ADAPTER.validate_python(body)


@pytest.mark.parametrize(
    ("event", "field", "value"),
    [
        (events.ModelCallStarted, "role", "helper"),
        (events.ModelFallback, "kind", "oops"),
        (events.ModelCallFailed, "kind", "oops"),
        (events.CellFinished, "status", "exploded"),
        (events.SubcallStarted, "kind", "shell"),
        (events.IterationFinished, "status", "maybe"),
    ],
)
def test_typed_fields_refuse_values_outside_their_literal(
    event: type[events._Event],  # pyright: ignore[reportPrivateUsage]
    field: str,
    value: str,
) -> None:
    sample = next(s for s in SAMPLES if type(s) is event)
    body = sample.model_dump() | {field: value}
    with pytest.raises(ValidationError) as caught:
        event.model_validate(body)
    assert {error["loc"][0] for error in caught.value.errors()} == {field}
