"""The double's Databricks-SQL-to-DuckDB rewriting, and statements that depend on it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from databricks.sdk import WorkspaceClient
from databricks.sdk.service.sql import StatementParameterListItem, StatementState
from databricks_double import DatabricksDouble
from databricks_double_sql_text import SqlTextError, rewrite, split_single_statement


def _duck(sql: str, **types: str | None) -> str:
    return rewrite(split_single_statement(sql), dict(types)).sql


def test_create_table_drops_databricks_clauses_and_maps_names_and_types() -> None:
    sql = (
        "CREATE TABLE IF NOT EXISTS `main`.rlm.events (id STRING COMMENT 'the key', "
        "at TIMESTAMP, local_at TIMESTAMP_NTZ, tags ARRAY<STRING>) USING DELTA "
        "PARTITIONED BY (id) CLUSTER BY (at) TBLPROPERTIES ('a' = '1') "
        "LOCATION 's3://x' COMMENT 'events'"
    )
    assert " ".join(_duck(sql).split()) == (
        'CREATE TABLE IF NOT EXISTS "main__rlm".events '
        "(id STRING , at TIMESTAMPTZ, local_at TIMESTAMP, tags STRING[])"
    )


def test_literals_comments_casts_and_parameters_are_kept_apart() -> None:
    sql = (
        "SELECT 'a.b.c :no', \"it's\", x::INT, CAST(:at AS TIMESTAMP) -- c.d.e :no\n"
        "FROM a.b.c WHERE k = :k AND j = :k"
    )
    assert _duck(sql, at="TIMESTAMPTZ", k=None) == (
        "SELECT 'a.b.c :no', 'it''s', x::INT, CAST(CAST($at AS TIMESTAMPTZ) AS TIMESTAMPTZ) "
        '-- c.d.e :no\nFROM "a__b".c WHERE k = $k AND j = $k'
    )
    assert (
        _duck("CREATE SCHEMA IF NOT EXISTS main.rlm") == 'CREATE SCHEMA IF NOT EXISTS "main__rlm"'
    )
    assert _duck("SELECT t.col FROM s.t") == "SELECT t.col FROM s.t"  # two parts: as DuckDB reads


def test_one_statement_per_request() -> None:
    assert _duck("SELECT 1;  ") == "SELECT 1"
    with pytest.raises(SqlTextError, match="one statement"):
        split_single_statement("SELECT 1; DROP TABLE x")
    with pytest.raises(SqlTextError, match="empty"):
        split_single_statement(" -- nothing\n")


@pytest.fixture
def w(tmp_path: Path) -> Iterator[tuple[DatabricksDouble, WorkspaceClient, str]]:
    with DatabricksDouble(tmp_path / "ws") as double:
        client = WorkspaceClient(host=double.url, token=double.token)
        warehouse_id = next(iter(client.warehouses.list())).id
        assert warehouse_id is not None
        yield double, client, warehouse_id


def _run(
    w: tuple[DatabricksDouble, WorkspaceClient, str], sql: str, **params: tuple[str, str]
) -> list[list[str | None]]:
    _, client, warehouse_id = w
    response = client.statement_execution.execute_statement(
        sql,
        warehouse_id,
        parameters=[
            StatementParameterListItem(name=k, type=t, value=v) for k, (t, v) in params.items()
        ],
        wait_timeout="30s",
    )
    assert response.status is not None
    assert response.status.state == StatementState.SUCCEEDED, response.status.error
    assert response.result is not None
    return [list(r) for r in response.result.data_array or []]


def test_schemas_volumes_and_timestamps_round_trip(
    w: tuple[DatabricksDouble, WorkspaceClient, str],
) -> None:
    double, client, _ = w
    double.sql_auto_create_schemas = False
    _run(w, "CREATE SCHEMA IF NOT EXISTS main.rlm")
    _run(w, "CREATE VOLUME IF NOT EXISTS main.rlm.artifacts")
    assert list(client.files.list_directory_contents("/Volumes/main/rlm/artifacts")) == []

    _run(w, "CREATE TABLE main.rlm.t (id STRING, seen_at TIMESTAMP, ok BOOLEAN, score DOUBLE)")
    _run(
        w,
        "INSERT INTO main.rlm.t VALUES (:id, :at, :ok, :score)",
        id=("STRING", "a"),
        at=("TIMESTAMP", "2026-01-02T03:04:05.678+02:00"),
        ok=("BOOLEAN", "true"),
        score=("DOUBLE", "0.5"),
    )
    rows = _run(w, "SELECT id, seen_at, ok, score, max(seen_at) OVER () AS latest FROM main.rlm.t")
    assert rows == [["a", "2026-01-02T01:04:05.678Z", "true", "0.5", "2026-01-02T01:04:05.678Z"]]
    history = _run(w, "DESCRIBE HISTORY main.rlm.t")
    assert [(r[0], r[2]) for r in history] == [("1", "WRITE"), ("0", "CREATE TABLE")]


def test_a_missing_schema_fails_when_auto_creation_is_off(
    w: tuple[DatabricksDouble, WorkspaceClient, str],
) -> None:
    double, client, warehouse_id = w
    double.sql_auto_create_schemas = False
    response = client.statement_execution.execute_statement(
        "CREATE TABLE main.nowhere.t (id STRING)", warehouse_id, wait_timeout="30s"
    )
    assert response.status is not None and response.status.state == StatementState.FAILED
    assert response.status.error is not None
    assert "SCHEMA_NOT_FOUND" in (response.status.error.message or "")
