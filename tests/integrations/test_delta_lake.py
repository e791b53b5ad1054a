"""The lakehouse over real Delta tables on disk: merges by key land each row once (also
from two processes at a time), guards hold, bad input is a typed error, and the tables
read back with deltalake, DuckDB and the change data feed."""

from __future__ import annotations

import gc
import random
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from delta_support import duckdb_rows, pyarrow_rows, start_writers

from rlm_engine.errors import ConfigurationError, MissingExtraError
from rlm_engine.integrations import delta_lake
from rlm_engine.integrations.delta_lake import MAX_TRIES, Lakehouse, LakehouseConflictError
from rlm_engine.integrations.delta_rows import key_bounds
from rlm_engine.integrations.delta_schemas import TABLES, pyarrow


@pytest.fixture
def lake(tmp_path: Path) -> Lakehouse:
    return Lakehouse(tmp_path / "lake")


def run_row(run_id: str, **columns: Any) -> dict[str, Any]:
    return {"run_id": run_id, "status": "running", "question": f"q {run_id}", **columns}


def test_rows_round_trip_with_types_and_float_timestamps(lake: Lakehouse) -> None:
    when = datetime(2026, 3, 1, 12, 0, 0, 250000, tzinfo=UTC)
    written = lake.merge(
        "runs",
        [
            run_row(
                "r1",
                iterations=3,
                sub_calls=7,
                cost_usd=0.125,
                created_time=1_700_000_000.5,
                finished_time=when,
            ),
            run_row("r2", answer="it's 42"),
        ],
    )
    assert written == 2
    rows = {r["run_id"]: r for r in lake.read("runs")}
    assert set(rows) == {"r1", "r2"}
    assert set(rows["r1"]) == set(TABLES["runs"].column_names)
    assert (rows["r1"]["iterations"], rows["r1"]["sub_calls"], rows["r1"]["cost_usd"]) == (
        3,
        7,
        0.125,
    )
    assert rows["r1"]["created_time"] == 1_700_000_000.5
    assert rows["r1"]["finished_time"] == when.timestamp()
    assert rows["r2"]["answer"] == "it's 42" and rows["r2"]["iterations"] is None
    # Equality filters, with quotes, None (null) and a timestamp.
    assert [r["run_id"] for r in lake.read("runs", where={"answer": "it's 42"})] == ["r2"]
    assert [r["run_id"] for r in lake.read("runs", where={"answer": None})] == ["r1"]
    assert [r["run_id"] for r in lake.read("runs", where={"finished_time": when})] == ["r1"]
    assert lake.read("runs", where={"run_id": "nope"}) == []
    assert lake.max_of("runs", "iterations") == 3


def test_a_naive_datetime_is_taken_as_utc(lake: Lakehouse) -> None:
    naive = datetime(2026, 1, 2, 3, 4, 5)
    lake.merge("memory", [{"scope": "s", "key": "k", "updated_time": naive}])
    [row] = lake.read("memory")
    assert row["updated_time"] == naive.replace(tzinfo=UTC).timestamp()


def test_merging_the_same_rows_again_keeps_one_row_per_key(lake: Lakehouse) -> None:
    rows = [run_row(f"r{i}", iterations=i) for i in range(5)]
    assert lake.merge("runs", rows) == 5
    version = lake.version("runs")
    assert lake.merge("runs", rows) == 5  # matched and updated, not inserted
    assert len(lake.read("runs")) == 5
    assert lake.version("runs") == (version or 0) + 1  # one commit per merge
    assert sorted(r["iterations"] for r in lake.read("runs")) == [0, 1, 2, 3, 4]


def test_duplicate_keys_in_one_merge_keep_the_last_row(lake: Lakehouse) -> None:
    lake.merge(
        "telemetry",
        [
            {"run_id": "r", "seq": 1, "event_type": "first"},
            {"run_id": "r", "seq": 2, "event_type": "other"},
            {"run_id": "r", "seq": 1, "event_type": "last"},
        ],
    )
    rows = {r["seq"]: r["event_type"] for r in lake.read("telemetry")}
    assert rows == {1: "last", 2: "other"}


def test_update_when_guards_finished_rows(lake: Lakehouse) -> None:
    guard = "t.status NOT IN ('completed','failed')"
    lake.merge(
        "artifact_registry",
        [
            {"artifact_id": "a1", "session_id": "s", "status": "pending", "iteration": 1},
            {"artifact_id": "a2", "session_id": "s", "status": "executing", "iteration": 2},
        ],
    )
    assert (
        lake.merge(
            "artifact_registry",
            [{"artifact_id": "a1", "session_id": "s", "status": "completed"}],
            update_when=guard,
        )
        == 1
    )
    # A completed artifact is never moved back; a new one is still inserted.
    assert (
        lake.merge(
            "artifact_registry",
            [
                {"artifact_id": "a1", "session_id": "s", "status": "pending"},
                {"artifact_id": "a3", "session_id": "t", "status": "pending"},
            ],
            update_when=guard,
        )
        == 1
    )
    status = {r["artifact_id"]: r["status"] for r in lake.read("artifact_registry")}
    assert status == {"a1": "completed", "a2": "executing", "a3": "pending"}


def test_bad_input_is_a_configuration_error_with_a_hint(lake: Lakehouse) -> None:
    with pytest.raises(ConfigurationError, match="no column.*colour") as unknown:
        lake.merge("runs", [run_row("r1", colour="red")])
    assert "run_id" in unknown.value.hint
    with pytest.raises(ConfigurationError, match="unknown lakehouse table 'nope'") as table:
        lake.merge("nope", [{"a": 1}])
    assert "runs" in table.value.hint
    with pytest.raises(ConfigurationError, match="no value for its key"):
        lake.merge("telemetry", [{"run_id": "r"}])
    with pytest.raises(ConfigurationError, match="does not fit"):
        lake.merge("runs", [run_row("r1", iterations="three")])
    with pytest.raises(ConfigurationError, match="timestamp"):
        lake.merge("runs", [run_row("r1", created_time="yesterday")])
    with pytest.raises(ConfigurationError, match="no column.*colour"):
        lake.read("runs", where={"colour": "red"})
    lake.merge("runs", [run_row("r1")])
    with pytest.raises(ConfigurationError, match="update_when") as predicate:
        lake.merge("runs", [run_row("r1")], update_when="t.no_such_column = 1")
    assert "t.<column>" in predicate.value.hint
    assert len(lake.read("runs")) == 1


def test_tables_are_created_once_with_partitions_types_and_change_feed(
    lake: Lakehouse,
) -> None:
    from deltalake import DeltaTable

    assert lake.version("runs") is None and lake.read("runs") == []
    lake.ensure()
    lake.ensure()  # a second call changes nothing
    for name in TABLES:
        assert lake.version(name) == 0, name
    registry = DeltaTable(lake.uri("artifact_registry"))
    assert registry.metadata().partition_columns == ["session_id"]
    assert registry.metadata().configuration == {"delta.enableChangeDataFeed": "true"}
    types = {f.name: str(f.type) for f in DeltaTable(lake.uri("runs")).schema().fields}
    assert types["iterations"] == 'PrimitiveType("long")'
    assert types["cost_usd"] == 'PrimitiveType("double")'
    assert types["created_time"] == 'PrimitiveType("timestamp")'
    assert types["question"] == 'PrimitiveType("string")'
    del registry
    gc.collect()


def test_the_change_data_feed_lists_inserts_and_updates(lake: Lakehouse) -> None:
    from deltalake import DeltaTable

    lake.merge("ingest_state", [{"source": "dir:/in", "watermark": "1"}])
    lake.merge("ingest_state", [{"source": "dir:/in", "watermark": "2"}])
    feed: Any = pyarrow().table(DeltaTable(lake.uri("ingest_state")).load_cdf(starting_version=0))
    rows: list[dict[str, Any]] = feed.to_pylist()
    changes = sorted((r["_commit_version"], r["_change_type"], r["watermark"]) for r in rows)
    assert changes == [
        (1, "insert", "1"),
        (2, "update_postimage", "2"),
        (2, "update_preimage", "1"),
    ]
    del feed
    gc.collect()


def test_two_processes_merging_overlapping_keys_land_every_row_once(tmp_path: Path) -> None:
    root = str(tmp_path / "lake")  # the table does not exist yet: both create it
    retries = start_writers(root, {"a": (0, 120), "b": (80, 200)}, batch=10)
    uri = Lakehouse(root).uri("telemetry")

    rows = pyarrow_rows(uri)
    seqs = [r["seq"] for r in rows]
    assert sorted(seqs) == list(range(200))  # none lost, none twice
    owner = {r["seq"]: r["event_type"] for r in rows}
    assert {owner[s] for s in range(80)} == {"a"} and {owner[s] for s in range(120, 200)} == {"b"}
    assert {owner[s] for s in range(80, 120)} <= {"a", "b"}
    [(count, distinct)] = duckdb_rows(
        uri, "select count(*), count(distinct seq) from arrow_table where run_id = 'r'"
    )
    assert (count, distinct) == (200, 200)
    assert sum(retries.values()) < 2 * 12 * MAX_TRIES  # bounded: every writer finished


def test_two_processes_merging_disjoint_keys_land_every_row_once(tmp_path: Path) -> None:
    root = str(tmp_path / "lake")
    start_writers(root, {"a": (0, 100), "b": (100, 200)}, batch=25)
    lake = Lakehouse(root)
    assert sorted(r["seq"] for r in lake.read("telemetry")) == list(range(200))
    assert duckdb_rows(lake.uri("telemetry"), "select max(seq) from arrow_table") == [(199,)]


def test_a_merge_that_keeps_conflicting_gives_up_with_a_typed_error(
    lake: Lakehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    from deltalake.exceptions import CommitFailedError
    from deltalake.table import TableMerger

    waits: list[float] = []
    lake = Lakehouse(lake.root, sleep=waits.append, rng=random.Random(7))
    lake.merge("runs", [run_row("r1")])
    calls: list[int] = []

    def conflict(self: TableMerger) -> dict[str, Any]:
        calls.append(1)
        raise CommitFailedError("a concurrent transaction deleted data this operation read")

    monkeypatch.setattr(TableMerger, "execute", conflict)
    with pytest.raises(LakehouseConflictError, match="'runs'.*20 tries") as error:
        lake.merge("runs", [run_row("r1", status="completed")])
    assert len(calls) == MAX_TRIES and len(waits) == MAX_TRIES
    assert all(0.0 <= w <= 1.0 for w in waits) and len(set(waits)) > 1  # jittered, capped
    assert "fewer, larger batches" in error.value.hint
    monkeypatch.undo()
    assert lake.read("runs")[0]["status"] == "running"


def test_a_conflict_that_clears_is_retried_and_lands(
    lake: Lakehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    from deltalake.exceptions import CommitFailedError
    from deltalake.table import TableMerger

    waits: list[float] = []
    lake = Lakehouse(lake.root, sleep=waits.append)
    real = TableMerger.execute
    failures = [1, 1]

    def flaky(self: TableMerger) -> dict[str, Any]:
        if failures:
            failures.pop()
            raise CommitFailedError("a concurrent transaction deleted data this operation read")
        return real(self)

    monkeypatch.setattr(TableMerger, "execute", flaky)
    assert lake.merge("runs", [run_row("r1")]) == 1
    assert len(waits) == 2 and len(lake.read("runs")) == 1


def test_roots_and_uris(tmp_path: Path) -> None:
    lake = Lakehouse.for_jobs(tmp_path, "rlm", "jobs")
    assert lake.root == str(tmp_path / "lakehouse" / "rlm" / "jobs")
    assert lake.uri("runs") == f"{lake.root}/runs"
    remote = Lakehouse("s3://bucket/lake/", storage_options={"AWS_REGION": "eu-west-1"})
    assert remote.uri("telemetry") == "s3://bucket/lake/telemetry"
    assert remote.storage_options == {"AWS_REGION": "eu-west-1"}
    assert delta_lake.TABLE_CONFIGURATION == {"delta.enableChangeDataFeed": "true"}


def test_a_merge_narrows_its_target_by_the_batch_keys_and_stays_exact(
    lake: Lakehouse,
) -> None:
    spec = TABLES["telemetry"]
    batch = [{"run_id": "o'b", "seq": 3}, {"run_id": "o'b", "seq": 9}]
    assert key_bounds(spec, batch) == [
        "t.\"run_id\" = 'o''b'",
        't."seq" >= 3 AND t."seq" <= 9',
    ]
    lake.merge(
        "telemetry",
        [
            {"run_id": r, "seq": s, "event_type": "old"}
            for r in ("a", "o'b", "z")
            for s in range(12)
        ],
    )
    # Keys inside and outside the other runs' ranges: only the batch's rows change.
    lake.merge(
        "telemetry", [{"run_id": "o'b", "seq": s, "event_type": "new"} for s in (0, 5, 11, 12)]
    )
    rows = {(r["run_id"], r["seq"]): r["event_type"] for r in lake.read("telemetry")}
    assert len(rows) == 37
    assert {k for k, v in rows.items() if v == "new"} == {("o'b", s) for s in (0, 5, 11, 12)}


def test_without_the_delta_extra_the_error_names_it(
    lake: Lakehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "deltalake", None)  # import deltalake -> ImportError
    for call in (lambda: lake.merge("runs", [run_row("r1")]), lambda: lake.read("runs")):
        with pytest.raises(MissingExtraError, match="deltalake") as error:
            call()
        assert "rlm-engine[delta]" in str(error.value)
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(MissingExtraError, match="pyarrow"):
        pyarrow()
