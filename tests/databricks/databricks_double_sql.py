"""SQL warehouses and the Statement Execution API of the Databricks double, over one DuckDB file.

Statements run synchronously within the request, one at a time, on one DuckDB connection
(the database file is ``root / "warehouse.duckdb"``; read it in-process with
`DatabricksDouble.sql`, since DuckDB lets one process hold a file open for writing). The reply
follows the API: ``status.state`` SUCCEEDED or FAILED (with ``status.error``), a ``manifest``
with the schema and chunk list, and the first chunk inline; further chunks through
``/result/chunks/{n}`` (``chunk_rows`` rows per chunk). Values are strings (or null), as in
``JSON_ARRAY`` format. ``wait_timeout="0s"`` answers PENDING first, so a client must poll
``GET /api/2.0/sql/statements/{id}``.

Not emulated: ``EXTERNAL_LINKS`` disposition, ``ARROW_STREAM``/``CSV`` formats, byte limits,
long-running statements and cancelling one in flight, Spark SQL functions DuckDB lacks, Delta
features (time travel, ``DESCRIBE DETAIL``, constraints); ``DESCRIBE HISTORY t`` answers from a
version counter kept by the double (one version per CREATE/INSERT/MERGE/UPDATE/DELETE).
Schemas named in a CREATE TABLE are created on the fly (a workspace would answer
SCHEMA_NOT_FOUND) unless ``auto_create_schemas`` is set to False.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from databricks_double_http import (
    ApiError,
    Request,
    Response,
    Route,
    as_array,
    as_object,
    invalid,
    json_response,
    not_found,
    route,
)
from databricks_double_sql_text import (
    PARAM_TYPES,
    SqlTextError,
    Token,
    rewrite,
    schema_name,
    split_single_statement,
)

DEFAULT_WAREHOUSE_ID = "d0b1e00000000001"
_WRITE_VERBS = {
    ("INSERT", "INTO"): "WRITE",
    ("MERGE", "INTO"): "MERGE",
    ("UPDATE", None): "UPDATE",
    ("DELETE", "FROM"): "DELETE",
}


@dataclass(frozen=True)
class Column:
    name: str
    type_name: str
    type_text: str


@dataclass(frozen=True)
class StatementResult:
    statement_id: str
    columns: tuple[Column, ...]
    rows: tuple[tuple[str | None, ...], ...]
    truncated: bool
    error: str | None = None


@dataclass
class _Warehouse:
    id: str
    name: str
    state: str


class SqlService:
    """State and handlers of ``/api/2.0/sql/warehouses`` and ``/api/2.0/sql/statements``."""

    def __init__(self, database: Path, files_root: Path) -> None:
        import duckdb

        self.database = database
        self.chunk_rows = 1000
        self.auto_create_schemas = True
        self.statements: list[str] = []  # the Databricks SQL text of every statement, in order
        self._files_root = files_root
        self._conn = duckdb.connect(str(database))
        self._conn.execute("SET TimeZone = 'UTC'")
        self._lock = threading.Lock()
        self._results: dict[str, StatementResult] = {}
        self._pending: set[str] = set()
        self._history: dict[str, list[tuple[int, int, str]]] = {}
        self._warehouses = [_Warehouse(DEFAULT_WAREHOUSE_ID, "double-warehouse", "RUNNING")]

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def add_warehouse(self, name: str, *, running: bool) -> str:
        with self._lock:
            warehouse_id = f"d0b1e{len(self._warehouses) + 1:011d}"
            state = "RUNNING" if running else "STOPPED"
            self._warehouses.append(_Warehouse(warehouse_id, name, state))
            return warehouse_id

    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """Run DuckDB SQL directly (for test assertions), on the double's connection."""
        with self._lock:
            return self._conn.execute(sql, parameters or {}).fetchall()

    def routes(self) -> list[Route]:
        base = r"/api/2\.0/sql"
        return [
            route("GET", f"{base}/warehouses", self._list_warehouses),
            route("GET", f"{base}/warehouses/(?P<id>[^/]+)", self._get_warehouse),
            route("POST", f"{base}/statements/?", self._execute),
            route("GET", f"{base}/statements/(?P<id>[^/]+)", self._get_statement),
            route(
                "GET",
                f"{base}/statements/(?P<id>[^/]+)/result/chunks/(?P<n>\\d+)",
                self._get_chunk,
            ),
            route("POST", f"{base}/statements/(?P<id>[^/]+)/cancel", self._cancel),
        ]

    # -- warehouses -----------------------------------------------------------------------

    def _warehouse_json(self, warehouse: _Warehouse) -> dict[str, Any]:
        return {
            "id": warehouse.id,
            "name": warehouse.name,
            "state": warehouse.state,
            "cluster_size": "2X-Small",
            "warehouse_type": "PRO",
            "enable_serverless_compute": True,
            "num_clusters": 1,
            "min_num_clusters": 1,
            "max_num_clusters": 1,
            "auto_stop_mins": 10,
            "creator_name": "tester@example.com",
        }

    def _list_warehouses(self, _: Request, __: re.Match[str]) -> Response:
        with self._lock:
            listed = [self._warehouse_json(w) for w in self._warehouses]
        return json_response({"warehouses": listed})

    def _get_warehouse(self, _: Request, match: re.Match[str]) -> Response:
        with self._lock:
            return json_response(self._warehouse_json(self._warehouse(match["id"])))

    def _warehouse(self, warehouse_id: str) -> _Warehouse:
        for warehouse in self._warehouses:
            if warehouse.id == warehouse_id:
                return warehouse
        raise not_found(f"Warehouse {warehouse_id} does not exist.")

    # -- statements -----------------------------------------------------------------------

    def _execute(self, request: Request, _: re.Match[str]) -> Response:
        body = request.json()
        statement = body.get("statement")
        if not isinstance(statement, str) or not statement.strip():
            raise invalid("statement is required")
        warehouse_id = body.get("warehouse_id")
        if not isinstance(warehouse_id, str) or not warehouse_id:
            raise invalid("warehouse_id is required")
        for key, allowed in (("disposition", "INLINE"), ("format", "JSON_ARRAY")):
            if body.get(key, allowed) != allowed:
                raise invalid(f"{key}={body[key]!r} is not emulated here; use {allowed}")
        wait = str(body.get("wait_timeout", "10s"))
        if not re.fullmatch(r"0s|([5-9]|[1-4]\d|50)s", wait):
            raise invalid(f"wait_timeout must be 0s or between 5s and 50s, got {wait!r}")
        params = [
            as_object(p, "a parameter") for p in as_array(body.get("parameters"), "parameters")
        ]
        row_limit = body.get("row_limit")
        with self._lock:
            self._warehouse(warehouse_id)
            self.statements.append(statement)
            result = self._run(
                statement,
                params,
                catalog=body.get("catalog"),
                schema=body.get("schema"),
                row_limit=int(row_limit) if row_limit else None,
            )
            self._results[result.statement_id] = result
            if wait == "0s":
                self._pending.add(result.statement_id)
                return json_response(
                    {"statement_id": result.statement_id, "status": {"state": "PENDING"}}
                )
            return json_response(self._response_json(result))

    def _get_statement(self, _: Request, match: re.Match[str]) -> Response:
        with self._lock:
            result = self._result(match["id"])
            if result.statement_id in self._pending:
                self._pending.discard(result.statement_id)
                return json_response(
                    {"statement_id": result.statement_id, "status": {"state": "RUNNING"}}
                )
            return json_response(self._response_json(result))

    def _get_chunk(self, _: Request, match: re.Match[str]) -> Response:
        with self._lock:
            result = self._result(match["id"])
            index = int(match["n"])
            if result.error is not None or index >= self._chunk_count(result):
                raise invalid(f"Chunk {index} does not exist for statement {result.statement_id}")
            return json_response(self._chunk_json(result, index))

    def _cancel(self, _: Request, match: re.Match[str]) -> Response:
        with self._lock:
            self._result(match["id"])
        return json_response({})

    def _result(self, statement_id: str) -> StatementResult:
        result = self._results.get(statement_id)
        if result is None:
            raise not_found(f"Statement {statement_id} does not exist.")
        return result

    # -- running one statement --------------------------------------------------------------

    def _run(
        self,
        statement: str,
        params: list[dict[str, Any]],
        *,
        catalog: Any,
        schema: Any,
        row_limit: int | None,
    ) -> StatementResult:
        statement_id = str(uuid.uuid4())
        try:
            columns, rows = self._run_duckdb(statement, params, catalog, schema)
        except (SqlTextError, ApiError) as error:
            return StatementResult(statement_id, (), (), False, str(error))
        except Exception as error:  # DuckDB's own errors are the statement's failure
            return StatementResult(statement_id, (), (), False, _duckdb_message(error))
        truncated = row_limit is not None and len(rows) > row_limit
        if truncated:
            rows = rows[:row_limit]
        return StatementResult(statement_id, columns, tuple(rows), truncated)

    def _run_duckdb(
        self, statement: str, params: list[dict[str, Any]], catalog: Any, schema: Any
    ) -> tuple[tuple[Column, ...], list[tuple[str | None, ...]]]:
        values, types = _parameters(params)
        tokens = split_single_statement(statement)
        words = [t for t in tokens if t.kind not in ("ws", "comment")]
        special = self._special(words, catalog, schema)
        if special is not None:
            return special
        rewritten = rewrite(tokens, types)
        missing = [m for m in rewritten.markers if m not in values]
        if missing:
            raise SqlTextError(
                f"[UNBOUND_SQL_PARAMETER] Found the unbound parameter: {missing[0]}. "
                "Please fix `args` and provide a mapping of the parameter."
            )
        created = _created_table(words, catalog, schema)
        if created is not None and self.auto_create_schemas:
            for cat, sch, _table in rewritten.three_part_names:
                self._conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema_name(cat, sch)}"')
        existed = created is not None and created in self._history
        self._conn.execute("BEGIN")
        try:
            if isinstance(catalog, str) and isinstance(schema, str) and catalog and schema:
                self._conn.execute(f"SET schema = '{schema_name(catalog, schema)}'")
            cursor = self._conn.execute(rewritten.sql, {m: values[m] for m in rewritten.markers})
            description = cursor.description
            raw_rows = cursor.fetchall() if description else []
            self._conn.execute("COMMIT")
        except Exception:
            self._conn.execute("ROLLBACK")
            raise
        finally:
            self._conn.execute("SET schema = 'main'")
        self._record_history(words, created, existed, (catalog, schema))
        if not description:
            return (), []
        columns = tuple(_column(str(d[0]), str(d[1])) for d in description)
        if [c.name for c in columns] == ["Count"]:
            columns = (Column("num_affected_rows", "LONG", "BIGINT"),)
        return columns, [tuple(_text(v) for v in row) for row in raw_rows]

    def _special(
        self, words: list[Token], catalog: Any, schema: Any
    ) -> tuple[tuple[Column, ...], list[tuple[str | None, ...]]] | None:
        """Statements answered by the double itself rather than DuckDB."""
        upper = [w.upper for w in words]
        if upper[:2] == ["CREATE", "CATALOG"] or upper[:2] == ["USE", "CATALOG"]:
            return (), []
        if upper[:2] == ["CREATE", "VOLUME"]:
            texts = [
                w.text.strip('`"') for w in words[2:] if w.upper not in ("IF", "NOT", "EXISTS")
            ]
            parts = [p for p in "".join(texts).split(".") if p]
            if len(parts) != 3:
                raise SqlTextError("CREATE VOLUME needs a three-part name catalog.schema.volume")
            (self._files_root / parts[0] / parts[1] / parts[2]).mkdir(parents=True, exist_ok=True)
            return (), []
        if upper[:2] == ["DESCRIBE", "HISTORY"]:
            key = _table_key([w.text for w in words[2:]], catalog, schema)
            if key not in self._history:
                raise SqlTextError(f"[TABLE_OR_VIEW_NOT_FOUND] The table {key} cannot be found.")
            limit = None
            if "LIMIT" in upper:
                limit = int(words[upper.index("LIMIT") + 1].text)
            history = sorted(self._history[key], reverse=True)[:limit]
            columns = (
                Column("version", "LONG", "BIGINT"),
                Column("timestamp", "TIMESTAMP", "TIMESTAMP"),
                Column("operation", "STRING", "STRING"),
            )
            rows: list[tuple[str | None, ...]] = [
                (str(v), _text(_utc(ts)), op) for v, ts, op in history
            ]
            return columns, rows
        return None

    def _record_history(
        self, words: list[Token], created: str | None, existed: bool, context: tuple[Any, Any]
    ) -> None:
        now = int(time.time() * 1000)
        if created is not None:
            if not existed:
                self._history[created] = [(0, now, "CREATE TABLE")]
            return
        upper = [w.upper for w in words]
        for (verb, second), operation in _WRITE_VERBS.items():
            if upper and upper[0] == verb and (second is None or upper[1:2] == [second]):
                start = 2 if second else 1
                key = _table_key([w.text for w in words[start:]], *context)
                history = self._history.get(key)
                if history is not None:
                    history.append((history[-1][0] + 1, now, operation))
                return

    # -- JSON shapes ----------------------------------------------------------------------

    def _chunk_count(self, result: StatementResult) -> int:
        return (len(result.rows) + self.chunk_rows - 1) // self.chunk_rows

    def _chunk_json(self, result: StatementResult, index: int) -> dict[str, Any]:
        offset = index * self.chunk_rows
        rows = result.rows[offset : offset + self.chunk_rows]
        chunk: dict[str, Any] = {
            "chunk_index": index,
            "row_offset": offset,
            "row_count": len(rows),
            "data_array": [list(r) for r in rows],
        }
        if index + 1 < self._chunk_count(result):
            chunk["next_chunk_index"] = index + 1
            chunk["next_chunk_internal_link"] = (
                f"/api/2.0/sql/statements/{result.statement_id}/result/chunks/{index + 1}"
            )
        return chunk

    def _response_json(self, result: StatementResult) -> dict[str, Any]:
        if result.error is not None:
            return {
                "statement_id": result.statement_id,
                "status": {
                    "state": "FAILED",
                    "error": {"error_code": "BAD_REQUEST", "message": result.error},
                },
            }
        count = self._chunk_count(result)
        manifest: dict[str, Any] = {
            "format": "JSON_ARRAY",
            "schema": {
                "column_count": len(result.columns),
                "columns": [
                    {
                        "name": c.name,
                        "type_name": c.type_name,
                        "type_text": c.type_text,
                        "position": i,
                    }
                    for i, c in enumerate(result.columns)
                ],
            },
            "total_chunk_count": count,
            "total_row_count": len(result.rows),
            "truncated": result.truncated,
        }
        if count:
            manifest["chunks"] = [
                {
                    "chunk_index": i,
                    "row_offset": i * self.chunk_rows,
                    "row_count": len(result.rows[i * self.chunk_rows : (i + 1) * self.chunk_rows]),
                }
                for i in range(count)
            ]
        return {
            "statement_id": result.statement_id,
            "status": {"state": "SUCCEEDED"},
            "manifest": manifest,
            "result": self._chunk_json(result, 0) if count else {},
        }


def _duckdb_message(error: Exception) -> str:
    """DuckDB's error in the words a workspace uses for the common cases."""
    text = str(error)
    missing = re.search(r"Table with name (\S+) does not exist", text)
    if missing is not None:
        return (
            f"[TABLE_OR_VIEW_NOT_FOUND] The table or view `{missing[1]}` cannot be found. "
            f"SQLSTATE: 42P01 ({text.splitlines()[0]})"
        )
    if "Schema with name" in text and "does not exist" in text:
        return f"[SCHEMA_NOT_FOUND] {text.splitlines()[0]} SQLSTATE: 42704"
    if type(error).__name__ in ("ParserException", "SyntaxException"):
        return f"[PARSE_SYNTAX_ERROR] {text} SQLSTATE: 42601"
    return f"[{type(error).__name__}] {text}"


def _parameters(
    params: list[dict[str, Any]],
) -> tuple[dict[str, Any], dict[str, str | None]]:
    values: dict[str, Any] = {}
    types: dict[str, str | None] = {}
    for param in params:
        name = param.get("name")
        if not isinstance(name, str) or not name:
            raise ApiError(400, "INVALID_PARAMETER_VALUE", "every parameter needs a name")
        declared = str(param.get("type") or "STRING").upper()
        decimal_type = re.fullmatch(r"DECIMAL\(\s*(\d+)\s*,\s*(\d+)\s*\)", declared)
        if decimal_type is not None:
            types[name] = f"DECIMAL({decimal_type[1]},{decimal_type[2]})"
        elif declared in PARAM_TYPES:
            types[name] = PARAM_TYPES[declared]
        else:
            raise ApiError(
                400, "INVALID_PARAMETER_VALUE", f"parameter {name!r} has unknown type {declared!r}"
            )
        value = param.get("value")
        values[name] = None if value is None else str(value)
    return values, types


def _created_table(words: list[Token], catalog: Any, schema: Any) -> str | None:
    """``catalog.schema.table`` (as written, lower-cased) of a CREATE TABLE, else None."""
    upper = [w.upper for w in words]
    if upper[:1] != ["CREATE"]:
        return None
    i = 1
    if upper[i : i + 3] == ["OR", "REPLACE", "TABLE"]:
        i += 2
    if upper[i : i + 1] != ["TABLE"]:
        return None
    i += 1
    if upper[i : i + 3] == ["IF", "NOT", "EXISTS"]:
        i += 3
    return _table_key([w.text for w in words[i:]], catalog, schema)


def _table_key(texts: list[str], catalog: Any, schema: Any) -> str:
    """The dotted name at the start of ``texts``, qualified by catalog/schema when given."""
    parts: list[str] = []
    expect_name = True
    for text in texts:
        if expect_name and text != ".":
            parts.append(text.strip('`"'))
            expect_name = False
        elif text == "." and not expect_name:
            expect_name = True
        else:
            break
    if len(parts) == 1 and isinstance(catalog, str) and isinstance(schema, str):
        parts = [catalog, schema, *parts]
    return ".".join(parts).lower()


_TYPE_NAMES = {
    "VARCHAR": "STRING",
    "BIGINT": "LONG",
    "INTEGER": "INT",
    "SMALLINT": "SHORT",
    "TINYINT": "BYTE",
    "DOUBLE": "DOUBLE",
    "FLOAT": "FLOAT",
    "BOOLEAN": "BOOLEAN",
    "DATE": "DATE",
    "TIMESTAMP WITH TIME ZONE": "TIMESTAMP",
    "BLOB": "BINARY",
    "HUGEINT": "DECIMAL",
    "UUID": "STRING",
    "INTERVAL": "INTERVAL",
    "NULL": "NULL",
}
_TYPE_TEXT = {"STRING": "STRING", "LONG": "BIGINT", "INT": "INT", "SHORT": "SMALLINT"}


def _column(name: str, duck_type: str) -> Column:
    upper = duck_type.upper()
    if upper.endswith("[]"):
        return Column(name, "ARRAY", f"ARRAY<{_column('', upper[:-2]).type_text}>")
    if upper.startswith("DECIMAL"):
        return Column(name, "DECIMAL", upper)
    if upper == "TIMESTAMP":  # DuckDB's naive timestamp is Databricks' TIMESTAMP_NTZ
        return Column(name, "TIMESTAMP", "TIMESTAMP_NTZ")
    if upper.startswith("STRUCT"):
        return Column(name, "STRUCT", upper)
    if upper.startswith("MAP"):
        return Column(name, "MAP", upper)
    type_name = _TYPE_NAMES.get(upper, "STRING")
    return Column(name, type_name, _TYPE_TEXT.get(type_name, type_name))


def _utc(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)


def _text(value: Any) -> str | None:
    """A value as JSON_ARRAY carries it: a string, or null."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value.isoformat(timespec="milliseconds") + "Z"
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, (list, dict, tuple)):
        return json.dumps(value, default=str)
    return str(cast(object, value))
