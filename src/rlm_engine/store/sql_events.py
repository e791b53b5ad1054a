"""The append-only event log. The store numbers each run's events 0, 1, 2, ... without gaps."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, RowMapping, select, update

from rlm_engine.store.errors import RunNotFoundError
from rlm_engine.store.records import StoredEvent
from rlm_engine.store.sql_base import SqlDb, upsert_many
from rlm_engine.store.sql_journal import execute_pipelined, rows_from_json
from rlm_engine.store.tables import events, runs

if TYPE_CHECKING:
    from rlm_engine.events import Event


def _next_seqs(conn: Connection, run_id: str, count: int) -> int:
    """Reserve `count` sequence numbers for a run and return the first.

    Bumping the run's counter row-locks it (Postgres) inside a write transaction (SQLite
    `BEGIN IMMEDIATE`), so concurrent appenders from any process get distinct numbers.
    """
    last = conn.execute(
        update(runs)
        .where(runs.c.run_id == run_id)
        .values(last_event_seq=runs.c.last_event_seq + count)
        .returning(runs.c.last_event_seq)
    ).scalar()
    if last is None:
        raise RunNotFoundError(run_id)
    return int(last) - count + 1


def append_events(db: SqlDb, batch: Sequence[Event]) -> list[int]:
    with db.write() as conn:
        return append_events_in(conn, batch)


def append_events_in(conn: Connection, batch: Sequence[Event]) -> list[int]:
    """Append events inside the caller's write transaction; their sequence numbers."""
    by_run: dict[str, list[int]] = {}
    for position, event in enumerate(batch):
        by_run.setdefault(event.run_id, []).append(position)
    seqs = [0] * len(batch)
    rows: list[dict[str, Any]] = []
    for run_id, positions in by_run.items():
        first = _next_seqs(conn, run_id, len(positions))
        for offset, position in enumerate(positions):
            event = batch[position]
            seqs[position] = first + offset
            rows.append(
                {
                    "run_id": run_id,
                    "seq": first + offset,
                    "type": event.type,
                    "node_id": event.node_id,
                    "depth": event.depth,
                    "ts": event.ts,
                    "body": event.model_dump_json(),
                }
            )
    data = _rows_json(rows) if rows and conn.dialect.name == "postgresql" else None
    if data is not None:
        execute_pipelined(conn, _INSERT_FROM_JSON, (data,))
    else:
        upsert_many(conn, events, rows)
    return seqs


_COLUMNS = ("run_id", "seq", "type", "node_id", "depth", "ts", "body")
_INSERT_FROM_JSON = f"INSERT INTO events ({', '.join(_COLUMNS)}) {rows_from_json(events, _COLUMNS)}"


def _rows_json(rows: list[dict[str, Any]]) -> str | None:
    """The rows as one JSON array, written out here (each body is JSON text already);
    None if a timestamp is not a finite number (JSON has no form for it)."""
    if not all(math.isfinite(row["ts"]) for row in rows):
        return None
    text = _JSON_STRING
    return (
        "["
        + ",".join(
            f'{{"run_id":{text(row["run_id"])},"seq":{row["seq"]:d},'
            f'"type":{text(row["type"])},"node_id":{text(row["node_id"])},'
            f'"depth":{row["depth"]:d},"ts":{float(row["ts"])!r},"body":{row["body"]}}}'
            for row in rows
        )
        + "]"
    )


_JSON_STRING: Callable[[str], str] = json.JSONEncoder(ensure_ascii=False).encode


def _to_event(row: RowMapping) -> StoredEvent:
    return StoredEvent(
        run_id=row["run_id"],
        seq=row["seq"],
        type=row["type"],
        node_id=row["node_id"],
        depth=row["depth"],
        ts=row["ts"],
        body=dict(row["body"]),
    )


def list_events(db: SqlDb, run_id: str, after_seq: int, limit: int | None) -> list[StoredEvent]:
    query = (
        select(events)
        .where(events.c.run_id == run_id, events.c.seq > after_seq)
        .order_by(events.c.seq)
        .limit(limit)
    )
    with db.read() as conn:
        return [_to_event(row) for row in conn.execute(query).mappings()]
