"""`SqlWarehouse` against the double's Statement Execution API, with the real SDK."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from databricks.sdk import WorkspaceClient
from databricks_double import DatabricksDouble

from rlm_engine.errors import ConfigurationError
from rlm_engine.integrations.databricks.sql import (
    SqlStatementError,
    SqlWarehouse,
    discover_warehouse,
    parse_timestamp,
)
from rlm_engine.integrations.databricks.workspace import workspace_client


@pytest.fixture
def double(tmp_path: Path) -> Iterator[DatabricksDouble]:
    with DatabricksDouble(tmp_path / "ws") as d:
        yield d


@pytest.fixture
def w(double: DatabricksDouble) -> WorkspaceClient:
    return workspace_client(host=double.url, token=double.token)


def test_values_are_bound_and_come_back_typed(double: DatabricksDouble, w: WorkspaceClient) -> None:
    at = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    rows = SqlWarehouse(w).execute(
        "SELECT :n + 1 AS n, :s AS s, :f * 2 AS f, :b AS b, :missing AS missing, :at AS at",
        {"n": 41, "s": "it's; DROP TABLE x", "f": 1.25, "b": True, "missing": None, "at": at},
    )
    assert len(rows) == 1
    row = rows[0]
    assert {k: row[k] for k in ("n", "s", "f", "b", "missing")} == {
        "n": 42,
        "s": "it's; DROP TABLE x",
        "f": 2.5,
        "b": True,
        "missing": None,
    }
    assert parse_timestamp(row["at"]) == at.timestamp()
    assert "DROP TABLE" not in double.sql_statements[-1]  # bound, not formatted in


def test_results_are_read_chunk_by_chunk(double: DatabricksDouble, w: WorkspaceClient) -> None:
    double.sql_chunk_rows = 2
    rows = SqlWarehouse(w).execute("SELECT * FROM range(7) AS t(i) ORDER BY i")
    assert [r["i"] for r in rows] == list(range(7))
    chunk_reads = [p for _, p in double.requests if "/result/chunks/" in p]
    assert len(chunk_reads) == 3


def test_a_running_statement_is_polled_until_it_finishes(
    double: DatabricksDouble, w: WorkspaceClient
) -> None:
    slept: list[float] = []
    warehouse = SqlWarehouse(w, wait_timeout="0s", sleep=slept.append)
    assert warehouse.execute("SELECT 'done' AS state") == [{"state": "done"}]
    assert slept  # it waited between polls
    polls = [
        p for m, p in double.requests if m == "GET" and p.startswith("/api/2.0/sql/statements/")
    ]
    assert polls


def test_a_failed_statement_raises_with_the_warehouse_message(w: WorkspaceClient) -> None:
    with pytest.raises(SqlStatementError) as caught:
        SqlWarehouse(w).execute("SELECT * FROM main.rlm.no_such_table")
    assert caught.value.not_found
    assert "TABLE_OR_VIEW_NOT_FOUND" in str(caught.value)
    assert caught.value.state == "FAILED" and caught.value.hint


def test_a_statement_without_a_result_returns_no_rows(w: WorkspaceClient) -> None:
    warehouse = SqlWarehouse(w)
    assert warehouse.execute("CREATE TABLE main.rlm.t (a INT) USING DELTA") == []
    assert warehouse.execute("SELECT count(*) AS n FROM main.rlm.t") == [{"n": 0}]


def test_a_row_limit_caps_the_rows(w: WorkspaceClient) -> None:
    rows = SqlWarehouse(w).execute("SELECT * FROM range(10) AS t(i)", row_limit=3)
    assert len(rows) == 3


def test_the_running_warehouse_is_discovered_first(
    double: DatabricksDouble, w: WorkspaceClient
) -> None:
    stopped = double.add_warehouse("stopped one", running=False)
    found = discover_warehouse(w)
    assert found != stopped
    assert SqlWarehouse(w).warehouse_id == found
    assert SqlWarehouse(w, stopped).warehouse_id == stopped


def test_no_warehouse_is_a_configuration_error_with_a_hint() -> None:
    fake = SimpleNamespace(warehouses=SimpleNamespace(list=lambda: iter(())))
    with pytest.raises(ConfigurationError) as caught:
        discover_warehouse(cast(Any, fake))
    assert "--warehouse-id" in caught.value.hint


def test_a_statement_that_never_finishes_is_cancelled_at_the_deadline() -> None:
    pending = SimpleNamespace(statement_id="st-1", status=SimpleNamespace(state=_State("RUNNING")))
    cancelled: list[str] = []

    def execute_statement(*args: object, **kwargs: object) -> object:
        return pending

    def get_statement(statement_id: str) -> object:
        return pending

    api = SimpleNamespace(
        execute_statement=execute_statement,
        get_statement=get_statement,
        cancel_execution=cancelled.append,
    )
    fake = SimpleNamespace(statement_execution=api)
    warehouse = SqlWarehouse(cast(Any, fake), "wh", timeout_s=0.0, sleep=lambda s: None)
    with pytest.raises(SqlStatementError) as caught:
        warehouse.execute("SELECT 1")
    assert caught.value.state == "TIMEOUT"
    assert cancelled == ["st-1"]


def test_an_unsupported_parameter_type_is_refused(w: WorkspaceClient) -> None:
    with pytest.raises(ConfigurationError, match="'x' is a list"):
        SqlWarehouse(w).execute("SELECT :x", {"x": [1, 2]})


class _State:
    def __init__(self, value: str) -> None:
        self.value = value
