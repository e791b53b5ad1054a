"""Copies a run from the journal store into the lakehouse tables.

The store stays the source of truth while a run runs: it takes hundreds of small event
writes a second, which Delta commits cannot (each is a log file and a Parquet file). The
mirror copies in batches: the run row to `runs`, the events not yet mirrored to `telemetry`,
the session's memory to `memory`, each as one merge by key. Every merge is idempotent, so a
repeated or concurrent call writes each row once, and a crash between calls loses nothing:
the next call starts from the highest `seq` already in `telemetry`.
"""

from __future__ import annotations

import json
from typing import Any

from rlm_engine.integrations.tables import TableStore
from rlm_engine.store.protocol import Store
from rlm_engine.store.records import MemoryScope, Run, StoredEvent

EVENT_BATCH = 5000
"""Events per telemetry merge: bounds the memory one merge needs on a long run."""


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def run_row(
    run: Run,
    *,
    session_id: str | None,
    user_id: str | None,
    dedupe_key: str | None,
) -> dict[str, Any]:
    """The `runs` row of a stored run."""
    return {
        "run_id": run.run_id,
        "session_id": session_id,
        "user_id": user_id,
        "tenant": run.tenant,
        "question": run.question,
        "model": run.model,
        "status": run.status,
        "stop_reason": run.stop_reason,
        "answer": run.answer,
        "dedupe_key": dedupe_key,
        "iterations": run.totals.iterations,
        "sub_calls": run.totals.sub_calls,
        "cost_usd": run.totals.cost_usd,
        "created_time": run.created_at,
        "finished_time": run.finished_at,
        "updated_time": run.updated_at,
    }


def event_row(event: StoredEvent) -> dict[str, Any]:
    """The `telemetry` row of a stored event."""
    return {
        "run_id": event.run_id,
        "seq": event.seq,
        "event_type": event.type,
        "node_id": event.node_id,
        "depth": event.depth,
        "time": event.ts,
        "payload_json": _json(event.body),
    }


def scope_name(scope: MemoryScope) -> str:
    """The `memory.scope` value: `session:<name>` or `user:<name>`."""
    return f"{scope.kind}:{scope.name}"


def mirror_run(
    store: Store,
    lake: TableStore,
    run_id: str,
    *,
    session_id: str | None,
    user_id: str | None,
    dedupe_key: str | None = None,
) -> None:
    """Copy the run's row, its events not mirrored yet and its session's memory.

    Cheap enough to call after every iteration: one aggregate read of `telemetry` finds
    where the last call stopped. `None` for `session_id`, `user_id` or `dedupe_key` keeps
    what an earlier call recorded (the store's session and user when there was none)."""
    from rlm_engine.store.errors import RunNotFoundError

    run = store.get_run(run_id)
    if run is None:
        raise RunNotFoundError(run_id)
    earlier = lake.read("runs", where={"run_id": run_id})
    before: dict[str, Any] = earlier[0] if earlier else {}
    session = session_id or before.get("session_id") or run.session
    user = user_id or before.get("user_id") or run.user
    key = dedupe_key or before.get("dedupe_key")

    # Events first: a reader that sees the run finished in `runs` finds all its events.
    last = lake.max_of("telemetry", "seq", where={"run_id": run_id})
    after = -1 if last is None else int(last)
    while True:
        events = store.list_events(run_id, after_seq=after, limit=EVENT_BATCH)
        if not events:
            break
        lake.merge("telemetry", [event_row(e) for e in events])
        after = events[-1].seq
        if len(events) < EVENT_BATCH:
            break

    memory_scope = run.session or session
    if memory_scope:
        scope = MemoryScope.session(memory_scope)
        items = store.memory_list(scope)
        if items:
            lake.merge(
                "memory",
                [
                    {
                        "scope": scope_name(scope),
                        "key": item.key,
                        "value_json": _json(item.value),
                        "updated_time": item.updated_at,
                    }
                    for item in items
                ],
                update_when="t.updated_time IS NULL OR s.updated_time >= t.updated_time",
            )

    lake.merge(
        "runs",
        [run_row(run, session_id=session, user_id=user, dedupe_key=key)],
        update_when="t.updated_time IS NULL OR s.updated_time >= t.updated_time",
    )
