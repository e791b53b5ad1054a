"""The event vocabulary: every event serialises and parses back through the union."""

from __future__ import annotations

import typing

from pydantic import TypeAdapter

from rlm_engine import events
from rlm_engine.events import Event

ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


def _members() -> list[type]:
    union = typing.get_args(Event)[0]
    return list(typing.get_args(union))


def test_every_event_type_is_unique_and_in_the_union() -> None:
    members = _members()
    names = [m.model_fields["type"].default for m in members]
    assert len(names) == len(set(names))
    declared = {
        obj
        for obj in vars(events).values()
        if isinstance(obj, type) and issubclass(obj, events._Event) and obj is not events._Event  # pyright: ignore[reportPrivateUsage]
    }
    assert declared == set(members)


def test_events_round_trip_through_json() -> None:
    origin = events.Origin(run_id="r1", node_id="r/1", depth=1)
    samples: list[Event] = [
        events.RunStarted(**origin, question="q", model="m/a", sub_model="m/b"),
        events.CellFinished(
            **origin,
            iteration=2,
            cell_index=0,
            status="timeout",
            output="",
            output_chars=0,
            duration_s=1.0,
            error="deadline",
        ),
        events.ModelCallFinished(
            **origin,
            role="sub",
            model="m/b",
            call_id="c1",
            input_tokens=3,
            output_tokens=4,
            cached_tokens=0,
            cost_usd=None,
            latency_s=0.1,
            response_chars=9,
        ),
        events.RunFinished(
            **origin,
            stop_reason="final",
            iterations=3,
            input_tokens=1,
            output_tokens=2,
            cost_usd=0.5,
            duration_s=1.5,
        ),
    ]
    for event in samples:
        parsed = ADAPTER.validate_json(event.model_dump_json())
        assert parsed == event
        assert type(parsed) is type(event)
