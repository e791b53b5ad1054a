"""The run journal: call-tree nodes (model calls and their results) and cells.

Each single-row write is its own committed transaction, so once a method returns, what it
recorded survives a crash of this process. `record_model_calls` (and, for cells,
`sql_cell_writes.write_cells_in`) work inside a transaction the caller opened
(`write_journal` commits many writes at once).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from typing import Any, Literal, cast

from sqlalchemy import JSON, Connection, Float, Integer, RowMapping, Select, Table, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.types import TypeEngine

from rlm_engine.store.errors import JournalConflictError, NotFoundError, RunNotFoundError
from rlm_engine.store.records import (
    TERMINAL_NODE_STATUSES,
    Cell,
    CellFinish,
    CellKey,
    CellStart,
    CellStatus,
    JournalSnapshot,
    ModelCall,
    Node,
    NodeStart,
    NodeStatus,
    Usage,
)
from rlm_engine.store.sql_base import SqlDb, select_in, upsert, upsert_many
from rlm_engine.store.sql_cell_writes import write_cells_in
from rlm_engine.store.tables import cells, nodes

_NODE_KEY = ["run_id", "node_id"]


def _usage(row: RowMapping) -> Usage:
    return Usage(row["input_tokens"], row["output_tokens"], row["cached_tokens"])


def to_node(row: RowMapping) -> Node:
    return Node(
        run_id=row["run_id"],
        node_id=row["node_id"],
        parent_id=row["parent_id"],
        kind=row["kind"],
        model=row["model"],
        status=row["status"],
        usage=_usage(row),
        cost_usd=row["cost_usd"],
        latency_s=row["latency_s"],
        request_hash=row["request_hash"],
        response_chars=row["response_chars"],
        error=row["error"],
        meta=dict(row["meta"] or {}),
        started_at=row["started_at"],
        finished_at=row["finished_at"],
    )


def _node_query(run_id: str, node_id: str) -> Select[*tuple[Any, ...]]:
    return select(nodes).where(nodes.c.run_id == run_id, nodes.c.node_id == node_id)


def _existing_node(conn: Connection, run_id: str, node_id: str) -> RowMapping | None:
    return conn.execute(_node_query(run_id, node_id)).mappings().first()


def start_node(db: SqlDb, node: NodeStart) -> Node:
    request_text, request_ref = db.pack(node.request)
    values: dict[str, Any] = {
        "run_id": node.run_id,
        "node_id": node.node_id,
        "parent_id": node.parent_id,
        "kind": node.kind,
        "model": node.model,
        "status": "running",
        "input_tokens": 0,
        "output_tokens": 0,
        "cached_tokens": 0,
        "request_hash": node.request_hash,
        "request_text": request_text,
        "request_ref": request_ref,
        "meta": dict(node.meta),
        "started_at": db.now(),
    }
    try:
        with db.write() as conn:
            row = _existing_node(conn, node.run_id, node.node_id)
            if row is not None and row["status"] in TERMINAL_NODE_STATUSES:
                raise JournalConflictError(
                    f"node {node.node_id!r} of run {node.run_id!r} already {row['status']}"
                )
            # A node still "running" was in flight at a crash: starting it again is a retry.
            upsert(conn, nodes, values, _NODE_KEY, update=[k for k in values if k != "started_at"])
            return to_node(conn.execute(_node_query(node.run_id, node.node_id)).mappings().one())
    except IntegrityError:
        raise RunNotFoundError(node.run_id) from None


def _result_values(
    db: SqlDb, usage: Usage, response: str | None, status: NodeStatus
) -> dict[str, Any]:
    response_text, response_ref = db.pack(response)
    return {
        "status": status,
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cached_tokens": usage.cached_tokens,
        "response_text": response_text,
        "response_ref": response_ref,
        "response_chars": None if response is None else len(response),
        "finished_at": db.now(),
    }


def _to_model_call(db: SqlDb, row: RowMapping) -> ModelCall:
    return ModelCall(
        run_id=row["run_id"],
        node_id=row["node_id"],
        kind=row["kind"],
        request_hash=row["request_hash"] or "",
        response=db.unpack(row["response_text"], row["response_ref"]) or "",
        parent_id=row["parent_id"],
        model=row["model"],
        request=db.unpack(row["request_text"], row["request_ref"]),
        status=row["status"],
        error=row["error"],
        usage=_usage(row),
        cost_usd=row["cost_usd"],
        latency_s=row["latency_s"],
        meta=dict(row["meta"] or {}),
    )


def _keep_started_values(values: dict[str, Any], started: Mapping[Any, Any]) -> None:
    # What `start_node` recorded (parent, model, request) stands unless the call says more.
    for name in ("parent_id", "model"):
        if values[name] is None:
            values[name] = started[name]
    if values["request_text"] is None and values["request_ref"] is None:
        values["request_text"] = started["request_text"]
        values["request_ref"] = started["request_ref"]
    values["meta"] = {**(started["meta"] or {}), **values["meta"]}


def _call_values(db: SqlDb, call: ModelCall) -> dict[str, Any]:
    request_text, request_ref = db.pack(call.request)
    return {
        "run_id": call.run_id,
        "node_id": call.node_id,
        "parent_id": call.parent_id,
        "kind": call.kind,
        "model": call.model,
        "request_hash": call.request_hash,
        "request_text": request_text,
        "request_ref": request_ref,
        "cost_usd": call.cost_usd,
        "latency_s": call.latency_s,
        "error": call.error,
        "meta": dict(call.meta),
        "started_at": db.now() - (call.latency_s or 0.0),
        **_result_values(db, call.usage, call.response, call.status),
    }


def record_model_call(db: SqlDb, call: ModelCall) -> ModelCall:
    values = _call_values(db, call)
    try:
        with db.write() as conn:
            row = _existing_node(conn, call.run_id, call.node_id)
            if row is not None:
                _keep_started_values(values, row)
            if row is None or row["status"] not in TERMINAL_NODE_STATUSES:
                # The WHERE keeps the first terminal record if a concurrent writer won.
                upsert(
                    conn,
                    nodes,
                    values,
                    _NODE_KEY,
                    update=[k for k in values if k != "started_at"],
                    where=nodes.c.status.not_in(TERMINAL_NODE_STATUSES),
                )
                row = _existing_node(conn, call.run_id, call.node_id)
                assert row is not None
    except IntegrityError:
        raise RunNotFoundError(call.run_id) from None
    if row["request_hash"] != call.request_hash:
        raise _conflict(call)
    return _to_model_call(db, row)


_STARTED_COLUMNS = (
    "node_id",
    "status",
    "request_hash",
    "parent_id",
    "model",
    "request_text",
    "request_ref",
    "meta",
)


def _existing_nodes(
    conn: Connection, run_id: str, node_ids: list[str]
) -> dict[str, Mapping[str, Any]]:
    """The rows of ``node_ids`` already there, by node id."""
    rows = select_in(conn, nodes.name, _STARTED_COLUMNS, {"run_id": run_id}, "node_id", node_ids)
    return {
        row["node_id"]: {**row, "meta": json.loads(m) if isinstance(m := row["meta"], str) else m}
        for row in rows
    }


def record_model_calls(db: SqlDb, conn: Connection, batch: Sequence[ModelCall]) -> None:
    """`record_model_call` for many calls inside the caller's write transaction. The same
    rules: the first journaled result stands; a different request hash raises
    `JournalConflictError` (and so fails the whole transaction).

    SQLite: one read of the rows already there and one multi-row upsert, nothing read back.
    Postgres: one upsert of every call (their rows in one JSON parameter) that merges with
    a started row in SQL; only if it skipped rows (journaled already) are they read, to
    compare request hashes."""
    by_run: dict[str, dict[str, ModelCall]] = {}
    for call in batch:
        calls = by_run.setdefault(call.run_id, {})
        first = calls.setdefault(call.node_id, call)
        if first.request_hash != call.request_hash:
            raise _conflict(call)
    if conn.dialect.name == "postgresql" and _record_model_calls_merging(db, conn, by_run):
        return
    rows: list[dict[str, Any]] = []
    for run_id, calls in by_run.items():
        existing = _existing_nodes(conn, run_id, list(calls))
        for node_id, call in calls.items():
            row = existing.get(node_id)
            if row is not None and row["status"] in TERMINAL_NODE_STATUSES:
                if row["request_hash"] != call.request_hash:
                    raise _conflict(call)
                continue  # journaled already: the first record stands
            values = _call_values(db, call)
            if row is not None:
                _keep_started_values(values, row)
            values["meta"] = json.dumps(values["meta"])
            rows.append(values)
    if rows:
        update_cols = [k for k in rows[0] if k != "started_at"]
        upsert_many(conn, nodes, rows, _NODE_KEY, update=update_cols, where=_NOT_TERMINAL)


# The first terminal record stands (SQL text for `upsert_many`).
_NOT_TERMINAL = "nodes.status NOT IN ({})".format(
    ", ".join(f"'{status}'" for status in sorted(TERMINAL_NODE_STATUSES))
)

# Postgres: what `_keep_started_values` does, in the upsert itself.
_KEEP_STARTED = {
    "parent_id": "COALESCE(excluded.parent_id, nodes.parent_id)",
    "model": "COALESCE(excluded.model, nodes.model)",
    "request_text": "CASE WHEN excluded.request_text IS NULL AND excluded.request_ref IS NULL "
    "THEN nodes.request_text ELSE excluded.request_text END",
    "request_ref": "CASE WHEN excluded.request_text IS NULL AND excluded.request_ref IS NULL "
    "THEN nodes.request_ref ELSE excluded.request_ref END",
    "meta": "CAST(CAST(nodes.meta AS JSONB) || CAST(excluded.meta AS JSONB) AS JSON)",
}


@functools.lru_cache(maxsize=64)
def _merging_upsert_sql(columns: tuple[str, ...]) -> str:
    sets = ", ".join(
        f"{c} = {_KEEP_STARTED.get(c, f'excluded.{c}')}" for c in columns if c != "started_at"
    )
    return (
        f"INSERT INTO nodes ({', '.join(columns)}) {rows_from_json(nodes, columns)} "
        f"ON CONFLICT (run_id, node_id) DO UPDATE SET {sets} WHERE {_NOT_TERMINAL}"
    )


def rows_from_json(table: Table, columns: Sequence[str]) -> str:
    """``SELECT`` of the rows in one JSON array parameter (objects keyed by column name):
    Postgres reads them with ``json_to_recordset``. One short statement and one bound
    parameter, however many rows: psycopg re-parsed a long multi-row ``VALUES`` statement
    on every call (30+ ms for 256 rows) and an executemany steps through every row in
    Python; ``json.dumps`` of the rows costs a fraction of either."""
    fields = ", ".join(f"{c} {_record_type(table.c[c].type)}" for c in columns)
    return f"SELECT {', '.join(columns)} FROM json_to_recordset(CAST(%s AS JSON)) AS t({fields})"


def _record_type(column_type: TypeEngine[Any]) -> str:
    if isinstance(column_type, JSON):
        return "json"
    if isinstance(column_type, Integer):
        return "bigint"
    if isinstance(column_type, Float):
        return "double precision"
    return "text"


def execute_pipelined(conn: Connection, sql: str, params: tuple[Any, ...]) -> int:
    """Run one statement; the rows it affected. On psycopg in pipeline mode, so the BEGIN
    that opens the transaction travels with it: one round trip, not two (at each, the writer
    thread gives up the GIL and may wait a switch interval to get it back)."""
    driver: Any = conn.connection.driver_connection
    if getattr(driver, "pipeline", None) is None:
        return conn.exec_driver_sql(sql, params).rowcount
    base: Any = conn.dialect.loaded_dbapi.Error
    try:
        with driver.cursor() as cursor:
            with driver.pipeline():
                cursor.execute(sql, params)
            return int(cursor.rowcount)  # known once the pipeline is synced, at its end
    except base as exc:
        invalidated = conn.dialect.is_disconnect(exc, driver, None)
        if invalidated:
            conn.invalidate(exc)
        raise DBAPIError.instance(
            sql, params, exc, base, connection_invalidated=invalidated
        ) from exc


def _record_model_calls_merging(
    db: SqlDb, conn: Connection, by_run: Mapping[str, Mapping[str, ModelCall]]
) -> bool:
    """False (nothing written) if a value has no JSON form (a cost that is not a number)."""
    rows = [_call_values(db, call) for calls in by_run.values() for call in calls.values()]
    if not rows:
        return True
    columns = tuple(rows[0])
    try:
        data = json.dumps(rows, ensure_ascii=False, allow_nan=False)
    except ValueError:
        return False
    if execute_pipelined(conn, _merging_upsert_sql(columns), (data,)) == len(rows):
        return True
    # The upsert skipped rows journaled already (their first record stands): each must
    # have the same request. A row written just now has it by construction.
    for run_id, calls in by_run.items():
        for node_id, row in _existing_nodes(conn, run_id, list(calls)).items():
            if row["request_hash"] != calls[node_id].request_hash:
                raise _conflict(calls[node_id])
    return True


def _conflict(call: ModelCall) -> JournalConflictError:
    return JournalConflictError(
        f"node {call.node_id!r} of run {call.run_id!r} is already journaled with a "
        "different request"
    )


def load_journal(db: SqlDb, run_id: str) -> JournalSnapshot:
    """A run's finished nodes and its cells, in one read transaction."""
    finished = select(nodes).where(
        nodes.c.run_id == run_id, nodes.c.status.in_(TERMINAL_NODE_STATUSES)
    )
    with db.read() as conn:
        rows = conn.execute(finished).mappings()
        calls = {row["node_id"]: _to_model_call(db, row) for row in rows}
        query = (
            select(cells)
            .where(cells.c.run_id == run_id)
            .order_by(cells.c.node_id, cells.c.iteration, cells.c.cell_index)
        )
        found = [_to_cell(db, row) for row in conn.execute(query).mappings()]
    return JournalSnapshot(calls=calls, cells=found)


def find_model_call(db: SqlDb, run_id: str, node_id: str) -> ModelCall | None:
    with db.read() as conn:
        row = _existing_node(conn, run_id, node_id)
    if row is None or row["status"] not in TERMINAL_NODE_STATUSES:
        return None
    return _to_model_call(db, row)


def finish_node(
    db: SqlDb,
    run_id: str,
    node_id: str,
    status: NodeStatus,
    *,
    usage: Usage,
    cost_usd: float | None,
    latency_s: float | None,
    response: str | None,
    error: str | None,
    meta: Mapping[str, Any] | None,
) -> Node:
    values = _result_values(db, usage, response, status)
    values.update(cost_usd=cost_usd, latency_s=latency_s, error=error)
    if meta is not None:
        values["meta"] = dict(meta)
    with db.write() as conn:
        row = _existing_node(conn, run_id, node_id)
        if row is None:
            raise NotFoundError(f"node {node_id!r} of run {run_id!r} was never started")
        if row["status"] in TERMINAL_NODE_STATUSES:
            raise JournalConflictError(f"node {node_id!r} of run {run_id!r} already finished")
        conn.execute(
            update(nodes).where(nodes.c.run_id == run_id, nodes.c.node_id == node_id).values(values)
        )
        return to_node(conn.execute(_node_query(run_id, node_id)).mappings().one())


def get_node(db: SqlDb, run_id: str, node_id: str) -> Node | None:
    with db.read() as conn:
        row = _existing_node(conn, run_id, node_id)
    return None if row is None else to_node(row)


def list_nodes(conn: Connection, run_id: str) -> list[Node]:
    query = (
        select(nodes).where(nodes.c.run_id == run_id).order_by(nodes.c.started_at, nodes.c.node_id)
    )
    return [to_node(row) for row in conn.execute(query).mappings()]


def _to_cell(db: SqlDb, row: RowMapping) -> Cell:
    return Cell(
        artifact_id=row["artifact_id"],
        run_id=row["run_id"],
        node_id=row["node_id"],
        iteration=row["iteration"],
        cell_index=row["cell_index"],
        instruction=row["instruction"],
        code=row["code"],
        code_hash=row["code_hash"],
        status=row["status"],
        output=db.unpack(row["output_text"], row["output_ref"]),
        output_hash=row["output_hash"],
        output_chars=row["output_chars"],
        error=row["error"],
        meta=_unpack_final(db, dict(row["meta"] or {})),
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
    )


def _unpack_final(db: SqlDb, meta: dict[str, Any]) -> dict[str, Any]:
    final: object = meta.get("final")
    if not isinstance(final, dict):
        return meta
    unpacked = dict(cast(Mapping[str, Any], final))
    answer_ref: object = unpacked.pop("answer_ref", None)
    if isinstance(answer_ref, str):
        unpacked["answer"] = db.unpack(None, answer_ref)
    fields_ref: object = unpacked.pop("fields_ref", None)
    if isinstance(fields_ref, str):
        unpacked["fields"] = json.loads(db.unpack(None, fields_ref) or "{}")
    return {**meta, "final": unpacked}


def _cell_row(conn: Connection, key: CellKey) -> RowMapping | None:
    query = select(cells).where(cells.c.artifact_id == key.artifact_id)
    return conn.execute(query).mappings().first()


def begin_cell(db: SqlDb, start: CellStart, status: CellStatus) -> Cell:
    try:
        with db.write() as conn:
            write_cells_in(db, conn, [start], status=status)
            row = _cell_row(conn, start.key)
            assert row is not None
            return _to_cell(db, row)
    except IntegrityError:
        raise RunNotFoundError(start.run_id) from None


def finish_cell(
    db: SqlDb,
    key: CellKey,
    status: Literal["completed", "failed", "blocked"],
    output: str,
    error: str | None,
    meta: Mapping[str, Any] | None,
) -> Cell:
    with db.write() as conn:
        write_cells_in(db, conn, finishes=[CellFinish(key, status, output, error, meta)])
        row = _cell_row(conn, key)
        assert row is not None
        return _to_cell(db, row)


def get_cell(db: SqlDb, key: CellKey) -> Cell | None:
    with db.read() as conn:
        row = _cell_row(conn, key)
    return None if row is None else _to_cell(db, row)


def list_cells(db: SqlDb, conn: Connection, run_id: str, node_id: str | None) -> list[Cell]:
    query = select(cells).where(cells.c.run_id == run_id)
    if node_id is not None:
        # One REPL's cells: their position is their execution order.
        query = query.where(cells.c.node_id == node_id).order_by(
            cells.c.iteration, cells.c.cell_index
        )
    else:
        query = query.order_by(
            cells.c.created_at, cells.c.node_id, cells.c.iteration, cells.c.cell_index
        )
    return [_to_cell(db, row) for row in conn.execute(query).mappings()]


def snapshot_refs(conn: Connection) -> set[str]:
    """Blob references of the namespace snapshots noted with cells (`meta.snapshot.ref`):
    garbage collection must keep them as long as their cells exist."""
    refs: set[str] = set()
    query = select(cells.c.meta).where(cells.c.meta.is_not(None))
    for meta in conn.execute(query).scalars():
        value: object = meta
        found: Mapping[str, Any] = cast(Mapping[str, Any], value) if isinstance(value, dict) else {}
        snapshot: object = found.get("snapshot")
        if isinstance(snapshot, dict):
            ref: object = cast(Mapping[str, Any], snapshot).get("ref")
            if isinstance(ref, str):
                refs.add(ref)
        final: object = found.get("final")  # a long FINAL kept as a blob (`pack_final`)
        if isinstance(final, dict):
            held = cast(Mapping[str, Any], final)
            refs.update(
                r for r in (held.get("answer_ref"), held.get("fields_ref")) if isinstance(r, str)
            )
    return refs
