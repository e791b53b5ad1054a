"""The lakehouse tables: names, key columns, column types and partitions.

Plain data, no `pyarrow` import: `arrow_schema` builds the Arrow schema only when a table is
created or written, so importing this module stays cheap.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Literal

ColumnType = Literal["string", "int32", "int64", "double", "timestamp"]


@dataclass(frozen=True, slots=True)
class TableSpec:
    """One table: rows are upserted by `keys`; `partition_by` names partition columns."""

    name: str
    keys: tuple[str, ...]
    columns: tuple[tuple[str, ColumnType], ...]
    partition_by: tuple[str, ...] = ()

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.columns)

    def type_of(self, column: str) -> ColumnType:
        return dict(self.columns)[column]

    @property
    def timestamp_columns(self) -> frozenset[str]:
        return frozenset(name for name, kind in self.columns if kind == "timestamp")


def _spec(
    name: str,
    keys: tuple[str, ...],
    columns: str,
    *,
    typed: dict[str, ColumnType] | None = None,
    partition_by: tuple[str, ...] = (),
) -> TableSpec:
    """A spec from a column list; columns ending in `_time` are timestamps, `typed` names
    the other non-string ones."""
    kinds = typed or {}
    cols: list[tuple[str, ColumnType]] = []
    for column in columns.split():
        kind: ColumnType = kinds.get(column, "timestamp" if column.endswith("_time") else "string")
        cols.append((column, kind))
    return TableSpec(name, keys, tuple(cols), partition_by)


TABLES: dict[str, TableSpec] = {
    spec.name: spec
    for spec in (
        _spec(
            "sessions",
            ("session_id",),
            "session_id app_name user_id state_json created_time updated_time",
        ),
        _spec("app_state", ("app_name",), "app_name state_json updated_time"),
        _spec("user_state", ("app_name", "user_id"), "app_name user_id state_json updated_time"),
        _spec(
            "runs",
            ("run_id",),
            "run_id session_id user_id tenant question model status stop_reason answer "
            "dedupe_key iterations sub_calls cost_usd created_time finished_time updated_time",
            typed={"iterations": "int64", "sub_calls": "int64", "cost_usd": "double"},
        ),
        _spec(
            "artifact_registry",
            ("artifact_id",),
            "artifact_id session_id invocation_id iteration artifact_type sublm_instruction "
            "code_artifact_key stdout_artifact_key stderr_artifact_key status metadata_json "
            "created_time updated_time consumed_time",
            typed={"iteration": "int32"},
            partition_by=("session_id",),
        ),
        _spec(
            "telemetry",
            ("run_id", "seq"),
            "run_id seq event_type node_id depth time payload_json",
            typed={"seq": "int64", "depth": "int32", "time": "timestamp"},
        ),
        _spec("memory", ("scope", "key"), "scope key value_json updated_time"),
        _spec(
            "results",
            ("source", "task_id"),
            "source task_id run_id session_id status answer error finished_time",
        ),
        _spec(
            "ingest_log",
            ("source", "task_key"),
            "source task_key session_id status run_id attempts triggered_time finished_time",
            typed={"attempts": "int32"},
        ),
        _spec("ingest_state", ("source",), "source watermark updated_time"),
    )
}


def pyarrow() -> Any:
    """The `pyarrow` module (a `deltalake` dependency; it ships no type stubs)."""
    try:
        return importlib.import_module("pyarrow")
    except ImportError as exc:
        from rlm_engine.errors import MissingExtraError

        raise MissingExtraError("Delta lakehouse tables", "delta", "pyarrow") from exc


def arrow_schema(spec: TableSpec) -> Any:
    """The Arrow schema of `spec`: timestamps are UTC microseconds (Delta's TIMESTAMP)."""
    pa = pyarrow()
    types: dict[ColumnType, Any] = {
        "string": pa.string(),
        "int32": pa.int32(),
        "int64": pa.int64(),
        "double": pa.float64(),
        "timestamp": pa.timestamp("us", tz="UTC"),
    }
    return pa.schema([pa.field(name, types[kind], nullable=True) for name, kind in spec.columns])
