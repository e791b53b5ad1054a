"""Cell starts and finishes written inside the caller's write transaction.

Every root turn's group commit carries a cell's start and the previous cell's finish, so
their cost is paid once per turn: the rows they touch are read with one statement and
written with driver-level SQL built once per shape. Compiling the equivalent Core
statements (a select and an upsert per start, a select and an update per finish) cost
several times the commit's fsync.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from typing import Any, cast

from sqlalchemy import Connection

from rlm_engine.store.errors import JournalConflictError, NotFoundError
from rlm_engine.store.records import TERMINAL_CELL_STATUSES, CellFinish, CellStart, CellStatus
from rlm_engine.store.sql_base import SqlDb, param_mark, select_in, text_hash, upsert_many
from rlm_engine.store.tables import cells

_STATE_COLUMNS = ("artifact_id", "status", "output_hash", "meta")
_BEGUN_KEPT = ("artifact_id", "created_at")
"""Columns a begin leaves as they are on a row a crash left pending or executing."""


def write_cells_in(
    db: SqlDb,
    conn: Connection,
    starts: Sequence[CellStart] = (),
    finishes: Sequence[CellFinish] = (),
    status: CellStatus = "executing",
) -> None:
    """Begin ``starts`` (as ``status``), then apply ``finishes``, in this transaction.

    The rules of `Store.begin_cell` and `Store.finish_cell`: beginning a finished cell, or
    finishing one with another outcome, raises `JournalConflictError`; finishing a cell
    never begun raises `NotFoundError`; finishing again with the same outcome only merges
    what its meta adds. A finish may follow its own start in the same call."""
    ids = list(
        dict.fromkeys([s.key.artifact_id for s in starts] + [f.key.artifact_id for f in finishes])
    )
    state = _cell_states(conn, ids)
    begun: dict[str, dict[str, Any]] = {}
    for start in starts:
        values = _begin_values(db, start, status, state.get(start.key.artifact_id))
        begun[start.key.artifact_id] = values
        state[start.key.artifact_id] = {
            "status": status,
            "output_hash": None,
            "meta": dict(start.meta),
        }
    if begun:
        rows = [{**v, "meta": json.dumps(v["meta"])} for v in begun.values()]
        update_cols = [c for c in rows[0] if c not in _BEGUN_KEPT]
        upsert_many(conn, cells, rows, ["artifact_id"], update=update_cols)
    for finish in finishes:
        _finish(db, conn, finish, state)


def _begin_values(
    db: SqlDb, start: CellStart, status: CellStatus, row: Mapping[str, Any] | None
) -> dict[str, Any]:
    key = start.key
    if row is not None and row["status"] in TERMINAL_CELL_STATUSES:
        raise JournalConflictError(f"cell {key.artifact_id} already {row['status']}")
    now = db.now()
    # A cell left pending/executing by a crash is simply begun again.
    return {
        "artifact_id": key.artifact_id,
        "run_id": start.run_id,
        "node_id": start.node_id,
        "iteration": start.iteration,
        "cell_index": start.cell_index,
        "instruction": start.instruction,
        "code": start.code,
        "code_hash": text_hash(start.code),
        "status": status,
        "output_text": None,
        "output_ref": None,
        "output_hash": None,
        "output_chars": None,
        "error": None,
        "meta": dict(start.meta),
        "created_at": now,
        "started_at": now if status == "executing" else None,
    }


def _finish(
    db: SqlDb, conn: Connection, finish: CellFinish, state: dict[str, dict[str, Any]]
) -> None:
    artifact_id = finish.key.artifact_id
    row = state.get(artifact_id)
    if row is None:
        raise NotFoundError(f"cell {artifact_id} was never begun (call begin_cell first)")
    output = finish.output
    output_text, output_ref = db.pack(output)
    output_hash = text_hash(output)
    meta: dict[str, Any] = row["meta"]
    if finish.meta is not None:
        meta = {**meta, **pack_final(db, finish.meta)}
    if row["status"] in TERMINAL_CELL_STATUSES:
        if row["status"] != finish.status or row["output_hash"] != output_hash:
            raise JournalConflictError(f"cell {artifact_id} already {row['status']}")
        # The same outcome journaled twice: idempotent, but what it adds to the meta (a
        # namespace snapshot taken after the cell) is kept.
        if meta != row["meta"]:
            _update(conn, artifact_id, {"meta": meta})
            row["meta"] = meta
        return
    values: dict[str, Any] = {
        "status": finish.status,
        "output_text": output_text,
        "output_ref": output_ref,
        "output_hash": output_hash,
        "output_chars": len(output),
        "error": finish.error,
        "finished_at": db.now(),
    }
    if finish.meta is not None:
        values["meta"] = meta
    _update(conn, artifact_id, values)
    state[artifact_id] = {"status": finish.status, "output_hash": output_hash, "meta": meta}


def _update(conn: Connection, artifact_id: str, values: Mapping[str, Any]) -> None:
    columns = tuple(values)
    sql = _update_sql(conn.dialect.name, columns)
    params = [json.dumps(v) if c == "meta" else v for c, v in values.items()]
    conn.exec_driver_sql(sql, (*params, artifact_id))


@functools.lru_cache(maxsize=32)
def _update_sql(dialect: str, columns: tuple[str, ...]) -> str:
    mark = param_mark(dialect)
    sets = ", ".join(
        f"{c} = CAST({mark} AS JSON)"
        if c == "meta" and dialect == "postgresql"
        else f"{c} = {mark}"
        for c in columns
    )
    return f"UPDATE {cells.name} SET {sets} WHERE artifact_id = {mark}"


def _cell_states(conn: Connection, artifact_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Status, output hash and meta of the cells already there, by artifact id."""
    found: dict[str, dict[str, Any]] = {}
    for row in select_in(conn, cells.name, _STATE_COLUMNS, {}, "artifact_id", artifact_ids):
        meta: object = row["meta"]
        value: object = json.loads(meta) if isinstance(meta, str) else meta
        found[row["artifact_id"]] = {
            "status": row["status"],
            "output_hash": row["output_hash"],
            "meta": cast(dict[str, Any], value) if isinstance(value, dict) else {},
        }
    return found


def pack_final(db: SqlDb, meta: Mapping[str, Any]) -> dict[str, Any]:
    """``meta`` with a long FINAL answer or SUBMIT fields moved to the blob store.

    A cell's meta is one JSON value in its row; a FINAL of hundreds of megabytes kept
    inline would make every read of the run's cells parse it."""
    final: object = meta.get("final")
    if not isinstance(final, dict):
        return dict(meta)
    packed = dict(cast(Mapping[str, Any], final))
    answer: object = packed.get("answer")
    if isinstance(answer, str):
        _, ref = db.pack(answer)
        if ref is not None:
            packed["answer"], packed["answer_ref"] = None, ref
    fields: object = packed.get("fields")
    if isinstance(fields, dict):
        _, ref = db.pack(json.dumps(fields, ensure_ascii=False, default=str))
        if ref is not None:
            packed["fields"], packed["fields_ref"] = None, ref
    return {**meta, "final": packed}
