"""`UnityCatalogTables` over the double's SQL warehouse, side by side with `Lakehouse`: the
same calls give the same rows, which is what lets the jobs run on either (`TableStore`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from databricks_double import DatabricksDouble

from rlm_engine.errors import ConfigurationError
from rlm_engine.integrations.databricks.sql import SqlWarehouse
from rlm_engine.integrations.databricks.uc_tables import UnityCatalogTables
from rlm_engine.integrations.databricks.workspace import workspace_client
from rlm_engine.integrations.delta_lake import Lakehouse
from rlm_engine.integrations.delta_schemas import TABLES
from rlm_engine.integrations.tables import TableStore

T0 = 1_767_225_600.125  # 2026-01-01 00:00:00.125 UTC (milliseconds: what the warehouse returns)


@pytest.fixture
def double(tmp_path: Path) -> Iterator[DatabricksDouble]:
    with DatabricksDouble(tmp_path / "ws") as d:
        yield d


@pytest.fixture
def uc(double: DatabricksDouble) -> UnityCatalogTables:
    w = workspace_client(host=double.url, token=double.token)
    return UnityCatalogTables(SqlWarehouse(w), "main", "rlm")


def both(uc: UnityCatalogTables, tmp_path: Path) -> list[TableStore]:
    return [uc, Lakehouse(tmp_path / "lake")]


def artifact(artifact_id: str, status: str, updated: float, **extra: Any) -> dict[str, Any]:
    return {
        "artifact_id": artifact_id,
        "session_id": "s1",
        "iteration": 1,
        "status": status,
        "created_time": T0,
        "updated_time": updated,
        **extra,
    }


def test_both_stores_satisfy_the_protocol(uc: UnityCatalogTables, tmp_path: Path) -> None:
    stores: list[TableStore] = both(uc, tmp_path)
    assert all(isinstance(s, TableStore) for s in stores)
    assert uc.root == "main.rlm" and uc.uri("runs") == "main.rlm.runs"


def test_ensure_creates_every_table_as_delta_in_the_schema(
    double: DatabricksDouble, uc: UnityCatalogTables
) -> None:
    uc.ensure()
    creates = [s for s in double.sql_statements if s.startswith("CREATE TABLE IF NOT EXISTS")]
    assert len(creates) == len(TABLES)
    registry = next(s for s in creates if "`artifact_registry`" in s)
    assert "USING DELTA PARTITIONED BY (`session_id`)" in registry
    assert "'delta.enableChangeDataFeed' = 'true'" in registry
    assert "`iteration` INT" in registry and "`updated_time` TIMESTAMP" in registry
    assert uc.read("telemetry") == []
    uc.ensure("runs")  # known tables are not created again
    assert len([s for s in double.sql_statements if s.startswith("CREATE")]) == len(TABLES)


def test_merge_read_and_max_agree_with_the_delta_lakehouse(
    uc: UnityCatalogTables, tmp_path: Path
) -> None:
    results: list[list[Any]] = []
    for store in both(uc, tmp_path):
        first = store.merge(
            "artifact_registry",
            [
                artifact("a1", "pending", T0, code_artifact_key="s1/a1/code.py"),
                artifact("a2", "pending", T0),
                artifact("a2", "pending", T0 + 1),  # the same key twice: the last row wins
            ],
        )
        again = store.merge("artifact_registry", [artifact("a1", "pending", T0)])
        forward = store.merge(
            "artifact_registry",
            [artifact("a1", "completed", T0 + 5), artifact("a2", "completed", T0 + 5)],
            update_when="t.status = 'pending'",
        )
        refused = store.merge(
            "artifact_registry",
            [artifact("a1", "pending", T0 + 9)],
            update_when="t.status = 'pending'",
        )
        rows = sorted(store.read("artifact_registry"), key=lambda r: r["artifact_id"])
        where = store.read(
            "artifact_registry", where={"artifact_id": "a1", "stdout_artifact_key": None}
        )
        top = store.max_of("artifact_registry", "updated_time", where={"session_id": "s1"})
        none = store.max_of("artifact_registry", "iteration", where={"session_id": "other"})
        results.append([first, again, forward, refused, rows, where, top, none])

    on_uc, on_delta = results
    assert on_uc == on_delta
    first, again, forward, refused, rows, where, top, none = on_uc
    assert (first, again, forward, refused) == (2, 1, 2, 0)
    assert [(r["artifact_id"], r["status"], r["updated_time"]) for r in rows] == [
        ("a1", "completed", T0 + 5),
        ("a2", "completed", T0 + 5),
    ]
    assert rows[0]["code_artifact_key"] is None  # a column a row leaves out is null
    assert rows[0]["iteration"] == 1 and len(where) == 1
    assert top == T0 + 5 and none is None


def test_telemetry_batches_larger_than_one_statement(
    double: DatabricksDouble, uc: UnityCatalogTables
) -> None:
    events = [
        {"run_id": "r1", "seq": i, "event_type": "e", "depth": 0, "time": T0, "payload_json": "{}"}
        for i in range(450)
    ]
    assert uc.merge("telemetry", events) == 450
    assert uc.merge("telemetry", events[-10:]) == 10  # matched rows are updated, not added
    assert len(uc.read("telemetry", where={"run_id": "r1"})) == 450
    assert uc.max_of("telemetry", "seq", where={"run_id": "r1"}) == 449
    merges = [s for s in double.sql_statements if s.startswith("MERGE INTO")]
    assert len(merges) == 4  # 200 + 200 + 50, then 10


def test_values_are_parameters_never_sql_text(
    double: DatabricksDouble, uc: UnityCatalogTables
) -> None:
    hostile = "x'); DROP TABLE main.rlm.runs; --"
    uc.merge("runs", [{"run_id": "r1", "question": hostile, "cost_usd": 0.5, "iterations": 3}])
    assert uc.read("runs", where={"question": hostile})[0]["question"] == hostile
    assert all(hostile not in s for s in double.sql_statements)
    row = uc.read("runs")[0]
    assert (row["cost_usd"], row["iterations"]) == (0.5, 3)


def test_version_follows_the_tables_history(uc: UnityCatalogTables) -> None:
    assert uc.version("sessions") is None
    uc.ensure("sessions")
    created = uc.version("sessions")
    uc.merge("sessions", [{"session_id": "s1", "app_name": "rlm"}])
    assert created is not None and uc.version("sessions") == created + 1


def test_bad_input_is_a_configuration_error(
    double: DatabricksDouble, uc: UnityCatalogTables
) -> None:
    with pytest.raises(ConfigurationError, match="no column"):
        uc.merge("runs", [{"run_id": "r1", "colour": "red"}])
    with pytest.raises(ConfigurationError, match="no value for its key"):
        uc.merge("runs", [{"question": "q"}])
    with pytest.raises(ConfigurationError, match="is a number"):
        uc.merge("runs", [{"run_id": "r1", "iterations": "three"}])
    with pytest.raises(ConfigurationError, match="no column"):
        uc.read("runs", where={"colour": "red"})
    with pytest.raises(ConfigurationError, match="update_when"):
        uc.merge("runs", [{"run_id": "r1"}], update_when="t.no_such_column = 1")
    w = workspace_client(host=double.url, token=double.token)
    with pytest.raises(ConfigurationError, match="plain SQL identifier"):
        UnityCatalogTables(SqlWarehouse(w), "main`; DROP", "rlm")
