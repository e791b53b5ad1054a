"""The run journal: call-tree nodes (model calls and their results) and cells.

Each write is its own committed transaction, so once a method returns, what it recorded
survives a crash of this process.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, RowMapping, Select, select, update
from sqlalchemy.exc import IntegrityError

from rlm_engine.store.errors import JournalConflictError, NotFoundError, RunNotFoundError
from rlm_engine.store.records import (
    TERMINAL_CELL_STATUSES,
    TERMINAL_NODE_STATUSES,
    Cell,
    CellKey,
    CellStart,
    CellStatus,
    ModelCall,
    Node,
    NodeStart,
    NodeStatus,
    Usage,
)
from rlm_engine.store.sql_base import SqlDb, text_hash, upsert
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


def _keep_started_values(values: dict[str, Any], started: RowMapping) -> None:
    # What `start_node` recorded (parent, model, request) stands unless the call says more.
    for name in ("parent_id", "model"):
        if values[name] is None:
            values[name] = started[name]
    if values["request_text"] is None and values["request_ref"] is None:
        values["request_text"] = started["request_text"]
        values["request_ref"] = started["request_ref"]
    values["meta"] = {**(started["meta"] or {}), **values["meta"]}


def record_model_call(db: SqlDb, call: ModelCall) -> ModelCall:
    request_text, request_ref = db.pack(call.request)
    values: dict[str, Any] = {
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
        raise JournalConflictError(
            f"node {call.node_id!r} of run {call.run_id!r} is already journaled with a "
            "different request"
        )
    return _to_model_call(db, row)


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
        meta=dict(row["meta"] or {}),
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
    )


def _cell_row(conn: Connection, key: CellKey) -> RowMapping | None:
    query = select(cells).where(cells.c.artifact_id == key.artifact_id)
    return conn.execute(query).mappings().first()


def begin_cell(db: SqlDb, start: CellStart, status: CellStatus) -> Cell:
    now = db.now()
    key = start.key
    values: dict[str, Any] = {
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
    try:
        with db.write() as conn:
            row = _cell_row(conn, key)
            if row is not None and row["status"] in TERMINAL_CELL_STATUSES:
                raise JournalConflictError(f"cell {key.artifact_id} already {row['status']}")
            # A cell left pending/executing by a crash is simply begun again.
            update_cols = [k for k in values if k not in ("artifact_id", "created_at")]
            upsert(conn, cells, values, ["artifact_id"], update=update_cols)
            row = _cell_row(conn, key)
            assert row is not None
            return _to_cell(db, row)
    except IntegrityError:
        raise RunNotFoundError(start.run_id) from None


def finish_cell(
    db: SqlDb,
    key: CellKey,
    status: CellStatus,
    output: str,
    error: str | None,
    meta: Mapping[str, Any] | None,
) -> Cell:
    output_text, output_ref = db.pack(output)
    output_hash = text_hash(output)
    values: dict[str, Any] = {
        "status": status,
        "output_text": output_text,
        "output_ref": output_ref,
        "output_hash": output_hash,
        "output_chars": len(output),
        "error": error,
        "finished_at": db.now(),
    }
    with db.write() as conn:
        row = _cell_row(conn, key)
        if row is None:
            raise NotFoundError(f"cell {key.artifact_id} was never begun (call begin_cell first)")
        if meta is not None:
            values["meta"] = {**(row["meta"] or {}), **meta}
        if row["status"] in TERMINAL_CELL_STATUSES:
            if row["status"] == status and row["output_hash"] == output_hash:
                return _to_cell(db, row)  # the same outcome journaled twice: idempotent
            raise JournalConflictError(f"cell {key.artifact_id} already {row['status']}")
        conn.execute(update(cells).where(cells.c.artifact_id == key.artifact_id).values(values))
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
