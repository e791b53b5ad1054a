"""The lakehouse tables as Unity Catalog Delta tables, written and read over SQL.

`UnityCatalogTables` has the methods of `Lakehouse` (it satisfies `TableStore`), so the jobs
run unchanged against `{catalog}.{schema}.{table}`. Every statement goes through a SQL
warehouse: the same SQL Spark runs, from a wheel task on a job cluster as from a laptop
outside the workspace, with the warehouse's own access to the tables (no storage
credentials in the process). Writes are one `MERGE INTO` by the table's key per batch of
rows, so a retried batch lands each row once; values are bound as named parameters, and
only identifiers checked against the table schemas are written into the SQL text.

Timestamps travel as UTC ISO text and read back as float epoch seconds, with the precision
the warehouse returns (milliseconds in its JSON results).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from rlm_engine.errors import ConfigurationError
from rlm_engine.integrations.databricks.sql import (
    SqlStatementError,
    SqlWarehouse,
    parse_timestamp,
)
from rlm_engine.integrations.delta_rows import check_columns, keyed_rows, spec_of, to_utc
from rlm_engine.integrations.delta_schemas import TABLES, ColumnType, TableSpec

SQL_TYPES: dict[ColumnType, str] = {
    "string": "STRING",
    "int32": "INT",
    "int64": "BIGINT",
    "double": "DOUBLE",
    "timestamp": "TIMESTAMP",
}
TABLE_PROPERTIES = "TBLPROPERTIES ('delta.enableChangeDataFeed' = 'true')"
ROWS_PER_STATEMENT = 200
"""Rows per MERGE: bounds the statement's size and parameter count; each batch is one
idempotent commit, so a failure part-way is repaired by writing the rows again."""
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def identifier(name: str, what: str) -> str:
    """`name` quoted for Databricks SQL, after checking it is a plain identifier (catalog and
    schema come from settings; nothing else is ever put into the text)."""
    if not _IDENTIFIER.fullmatch(name):
        raise ConfigurationError(
            f"{what} {name!r} is not a plain SQL identifier",
            hint=f"use letters, digits and underscores for the {what}",
        )
    return f"`{name}`"


class UnityCatalogTables:
    """The jobs' tables in Unity Catalog: table `T` is `{catalog}.{schema}.T`."""

    def __init__(self, warehouse: SqlWarehouse, catalog: str, schema: str) -> None:
        self._catalog = identifier(catalog, "catalog")
        self._schema = identifier(schema, "schema")
        self.warehouse = warehouse
        self.catalog = catalog
        self.schema = schema
        self._known: set[str] = set()

    def __repr__(self) -> str:
        return f"UnityCatalogTables({self.root!r})"

    @property
    def root(self) -> str:
        return f"{self.catalog}.{self.schema}"

    def uri(self, table: str) -> str:
        return f"{self.catalog}.{self.schema}.{table}"

    def _name(self, spec: TableSpec) -> str:
        return f"{self._catalog}.{self._schema}.{identifier(spec.name, 'table')}"

    # -- tables ---------------------------------------------------------------------------

    def ensure(self, *tables: str) -> None:
        """Create the missing tables (every known table if none is named); the schema
        must exist (creating one needs a grant a job rarely has)."""
        for name in tables or tuple(TABLES):
            self._ensure_one(spec_of(name))

    def _ensure_one(self, spec: TableSpec) -> None:
        if spec.name in self._known:
            return
        self.warehouse.execute(create_table_sql(self._name(spec), spec))
        self._known.add(spec.name)

    def version(self, table: str) -> int | None:
        """The table's latest Delta version (`DESCRIBE HISTORY`), None if it does not exist."""
        spec = spec_of(table)
        try:
            rows = self.warehouse.execute(f"DESCRIBE HISTORY {self._name(spec)} LIMIT 1")
        except SqlStatementError as exc:
            if exc.not_found:
                return None
            raise
        return int(rows[0]["version"]) if rows else None

    # -- writes ---------------------------------------------------------------------------

    def merge(
        self,
        table: str,
        rows: Sequence[Mapping[str, Any]],
        *,
        update_when: str | None = None,
    ) -> int:
        """Upsert `rows` by the table's key (see `Lakehouse.merge`: columns left out are
        null, duplicate keys keep the last row, `update_when` guards updates); creates the
        table if it is missing. Returns rows inserted + updated."""
        spec = spec_of(table)
        clean = clean_rows(spec, rows)
        self._ensure_one(spec)
        changed = 0
        for start in range(0, len(clean), ROWS_PER_STATEMENT):
            batch = clean[start : start + ROWS_PER_STATEMENT]
            sql, params = merge_sql(self._name(spec), spec, batch, update_when)
            try:
                result = self.warehouse.execute(sql, params)
            except SqlStatementError as exc:
                if update_when is not None and _about_the_statement(exc):
                    raise ConfigurationError(
                        f"table {self.uri(table)}: merge with update_when={update_when!r} "
                        f"failed: {exc}",
                        hint="update_when is a SQL predicate over t.<column> (target) and "
                        "s.<column> (source)",
                    ) from exc
                raise
            changed += changed_rows(result)
        return changed

    # -- reads ----------------------------------------------------------------------------

    def read(self, table: str, *, where: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """The rows whose columns equal `where`'s values (None matches null), timestamps
        as float epoch seconds; [] if the table does not exist yet."""
        spec = spec_of(table)
        columns = ", ".join(f"`{c}`" for c in spec.column_names)
        rows = self._query(spec, columns, where)
        stamps = spec.timestamp_columns
        return [
            {c: _from_sql(spec, c, row.get(c), stamps) for c in spec.column_names} for row in rows
        ]

    def max_of(self, table: str, column: str, *, where: Mapping[str, Any] | None = None) -> Any:
        """The largest `column` value among the rows matching `where` (None if none)."""
        spec = spec_of(table)
        check_columns(spec, [column])
        rows = self._query(spec, f"max(`{column}`) AS m", where)
        if not rows:
            return None
        return _from_sql(spec, column, rows[0].get("m"), spec.timestamp_columns)

    def _query(
        self, spec: TableSpec, select: str, where: Mapping[str, Any] | None
    ) -> list[dict[str, Any]]:
        filters = dict(where or {})
        check_columns(spec, filters)
        terms: list[str] = []
        params: dict[str, Any] = {}
        for i, (column, value) in enumerate(filters.items()):
            if value is None:
                terms.append(f"`{column}` IS NULL")
                continue
            name = f"w{i}"
            terms.append(f"`{column}` = {_typed(spec, column, name)}")
            params[name] = _to_sql(spec, column, value)
        sql = f"SELECT {select} FROM {self._name(spec)}"
        if terms:
            sql += " WHERE " + " AND ".join(terms)
        try:
            return self.warehouse.execute(sql, params)
        except SqlStatementError as exc:
            if exc.not_found:
                return []
            raise


def create_table_sql(name: str, spec: TableSpec) -> str:
    """`CREATE TABLE IF NOT EXISTS` of `spec` as a Delta table with the change data feed."""
    columns = ", ".join(f"`{c}` {SQL_TYPES[kind]}" for c, kind in spec.columns)
    partition = (
        " PARTITIONED BY (" + ", ".join(f"`{c}`" for c in spec.partition_by) + ")"
        if spec.partition_by
        else ""
    )
    return (
        f"CREATE TABLE IF NOT EXISTS {name} ({columns}) USING DELTA{partition} " + TABLE_PROPERTIES
    )


def clean_rows(spec: TableSpec, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The rows checked and deduplicated as `Lakehouse.merge` does (`keyed_rows`), each
    value as the SQL parameter it is bound as."""
    return [
        {c: _to_sql(spec, c, row[c]) for c in spec.column_names} for row in keyed_rows(spec, rows)
    ]


def merge_sql(
    name: str, spec: TableSpec, rows: Sequence[Mapping[str, Any]], update_when: str | None
) -> tuple[str, dict[str, Any]]:
    """One `MERGE INTO` of `rows` (already clean) by the key, with its parameters."""
    params: dict[str, Any] = {}
    selects: list[str] = []
    for r, row in enumerate(rows):
        values: list[str] = []
        for c, column in enumerate(spec.column_names):
            marker = f"r{r}c{c}"
            params[marker] = row[column]
            values.append(f"{_typed(spec, column, marker)} AS `{column}`")
        selects.append("SELECT " + ", ".join(values))
    on = " AND ".join(f"t.`{k}` = s.`{k}`" for k in spec.keys)
    others = [c for c in spec.column_names if c not in spec.keys]
    matched = "WHEN MATCHED" + (f" AND ({update_when})" if update_when else "")
    update = ", ".join(f"`{c}` = s.`{c}`" for c in others)
    insert_columns = ", ".join(f"`{c}`" for c in spec.column_names)
    insert_values = ", ".join(f"s.`{c}`" for c in spec.column_names)
    sql = (
        f"MERGE INTO {name} AS t USING ({' UNION ALL '.join(selects)}) AS s ON {on} "
        + (f"{matched} THEN UPDATE SET {update} " if others else "")
        + f"WHEN NOT MATCHED THEN INSERT ({insert_columns}) VALUES ({insert_values})"
    )
    return sql, params


def changed_rows(result: Sequence[Mapping[str, Any]]) -> int:
    """Rows inserted + updated, from the metrics row a MERGE returns."""
    if not result:
        return 0
    row = result[0]
    if "num_inserted_rows" in row or "num_updated_rows" in row:
        return int(row.get("num_inserted_rows") or 0) + int(row.get("num_updated_rows") or 0)
    affected = row.get("num_affected_rows")
    return int(affected or 0)


_STATEMENT_ERRORS = (
    "PARSE_SYNTAX_ERROR",
    "UNRESOLVED_COLUMN",
    "DATATYPE_MISMATCH",
    "BinderException",
    "ParserException",
)


def _about_the_statement(exc: SqlStatementError) -> bool:
    """Whether the warehouse rejected the statement's text (a bad predicate), rather than
    failing to run it."""
    text = str(exc)
    return any(marker in text for marker in _STATEMENT_ERRORS)


def _typed(spec: TableSpec, column: str, marker: str) -> str:
    return f"CAST(:{marker} AS {SQL_TYPES[spec.type_of(column)]})"


def _to_sql(spec: TableSpec, column: str, value: Any) -> Any:
    """A row value as a parameter of its column's type (timestamps as UTC datetimes)."""
    if value is None:
        return None
    if column in spec.timestamp_columns:
        return to_utc(value, spec.name, column)
    kind = spec.type_of(column)
    if kind == "string":
        if not isinstance(value, str):
            raise ConfigurationError(
                f"table {spec.name!r}: column {column!r} is text, got {type(value).__name__}",
                hint="strings for text columns, ints for counters, floats for costs",
            )
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigurationError(
            f"table {spec.name!r}: column {column!r} is a number, got {type(value).__name__}",
            hint="strings for text columns, ints for counters, floats for costs",
        )
    if kind == "double":
        return float(value)
    if isinstance(value, float) and not value.is_integer():
        raise ConfigurationError(
            f"table {spec.name!r}: column {column!r} is an integer, got {value!r}",
            hint="strings for text columns, ints for counters, floats for costs",
        )
    return int(value)


def _from_sql(spec: TableSpec, column: str, value: Any, stamps: frozenset[str]) -> Any:
    if value is None:
        return None
    if column in stamps:
        return parse_timestamp(str(value))
    kind = spec.type_of(column)
    if kind in ("int32", "int64"):
        return int(value)
    if kind == "double":
        return float(value)
    return value
