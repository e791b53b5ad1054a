"""Rows in and out of the lakehouse tables: Python values to an Arrow table in a table's
schema (checked, deduplicated by key), Arrow values back to Python, and equality filters
as SQL."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from rlm_engine.errors import ConfigurationError
from rlm_engine.integrations.delta_schemas import TABLES, TableSpec, arrow_schema, pyarrow


def to_utc(value: Any, table: str, column: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(float(value), UTC)
    raise ConfigurationError(
        f"Delta table {table!r}: column {column!r} is a timestamp, got {type(value).__name__}",
        hint="pass float epoch seconds or a datetime",
    )


def from_arrow(value: Any) -> Any:
    return value.timestamp() if isinstance(value, datetime) else value


def keyed_rows(spec: TableSpec, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The rows with every column of `spec` (missing ones null), deduplicated by key (the
    last row wins, in the order of last appearance); an unknown column or a row without
    its key is a `ConfigurationError`. What every table store checks before a merge."""
    known = set(spec.column_names)
    by_key: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        unknown = sorted(set(row) - known)
        if unknown:
            raise ConfigurationError(
                f"table {spec.name!r} has no column(s) {', '.join(unknown)}",
                hint=f"its columns are: {', '.join(spec.column_names)}",
            )
        key = tuple(row.get(k) for k in spec.keys)
        if any(part is None for part in key):
            raise ConfigurationError(
                f"table {spec.name!r}: a row has no value for its key ({', '.join(spec.keys)})",
                hint="every row must set all key columns",
            )
        by_key.pop(key, None)
        by_key[key] = {c: row.get(c) for c in spec.column_names}
    return list(by_key.values())


def source_table(spec: TableSpec, rows: Sequence[Mapping[str, Any]]) -> Any:
    """The rows as one Arrow table in the table's schema, deduplicated by key."""
    clean = keyed_rows(spec, rows)
    for row in clean:
        for column in spec.timestamp_columns:
            row[column] = to_utc(row[column], spec.name, column)
    if not clean:
        return None
    pa = pyarrow()
    try:
        return pa.Table.from_pylist(clean, schema=arrow_schema(spec))
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise ConfigurationError(
            f"Delta table {spec.name!r}: a value does not fit its column: {exc}",
            hint="strings for text columns, ints for counters, floats for costs",
        ) from exc


def check_columns(spec: TableSpec, columns: Iterable[str]) -> None:
    unknown = sorted(set(columns) - set(spec.column_names))
    if unknown:
        raise ConfigurationError(
            f"Delta table {spec.name!r} has no column(s) {', '.join(unknown)}",
            hint=f"its columns are: {', '.join(spec.column_names)}",
        )


def sql_literal(spec: TableSpec, column: str, value: Any) -> str:
    """`value` as a SQL literal of `column`'s type."""
    if column in spec.timestamp_columns:
        stamp = to_utc(value, spec.name, column)
        assert stamp is not None
        micros = (stamp - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
        return f"to_timestamp_micros({micros})"
    if isinstance(value, str):
        return "'{}'".format(value.replace("'", "''"))
    if isinstance(value, int | float) and not isinstance(value, bool):
        return repr(value)
    raise ConfigurationError(
        f"Delta table {spec.name!r}: cannot filter {column!r} by a {type(value).__name__}",
        hint="filter by strings, numbers or None",
    )


def sql_equals(spec: TableSpec, column: str, value: Any) -> str:
    """`column = literal` in SQL, for the value types the tables hold."""
    if value is None:
        return f'"{column}" IS NULL'
    return f'"{column}" = {sql_literal(spec, column, value)}'


def key_bounds(spec: TableSpec, rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Conditions on the target's key columns that every row matching `rows` meets: the
    key's one value, or the range of its values. Added to a merge's join predicate, they
    let delta-rs skip the files whose statistics lie outside (a mirror batch of one run
    then reads none of the other runs' files)."""
    bounds: list[str] = []
    for column in spec.keys:
        values = {row[column] for row in rows}
        low, high = min(values), max(values)
        if low == high:
            bounds.append(f't."{column}" = {sql_literal(spec, column, low)}')
        else:
            bounds.append(
                f't."{column}" >= {sql_literal(spec, column, low)} AND '
                f't."{column}" <= {sql_literal(spec, column, high)}'
            )
    return bounds


def spec_of(table: str) -> TableSpec:
    try:
        return TABLES[table]
    except KeyError:
        raise ConfigurationError(
            f"unknown lakehouse table {table!r}",
            hint=f"the tables are: {', '.join(TABLES)}",
        ) from None
