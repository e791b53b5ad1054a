"""Table contexts on the host: detection, resolution into files, schemas and row counts,
refusals with hints, and pinning a Delta table at its version."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import pytest
from deltalake import DeltaTable, write_deltalake

from rlm_engine.errors import ConfigurationError
from rlm_engine.integrations.table_context import (
    TableContextError,
    delta_pin_files,
    is_table_path,
    resolve_tables,
    table_sources_of,
    table_spec,
    view_name,
)
from rlm_engine.sandbox.worker_table import load_tables
from rlm_engine.store.factory import open_store
from rlm_engine.store.pinned_context import pin_context, restore_context

# pyarrow ships no type stubs.
pa: Any = importlib.import_module("pyarrow")
pq: Any = importlib.import_module("pyarrow.parquet")


ORDERS = pa.table(
    {
        "id": pa.array([1, 2, 3, 4], pa.int64()),
        "region": ["eu", "us", "eu", "apac"],
        "amount": [1.5, 2.0, 3.0, 4.25],
    }
)


def test_view_names_follow_the_stem() -> None:
    assert view_name("Orders 2024-Q1") == "orders_2024_q1"
    assert view_name("part-0.snappy") == "part_0_snappy"
    assert view_name("2024") == "t_2024"


def test_what_counts_as_a_table_path(tmp_path: Path) -> None:
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("text")
    (tmp_path / "notes" / "b.csv").write_text("a\n1\n")
    (tmp_path / "csvs").mkdir()
    (tmp_path / "csvs" / "b.csv").write_text("a\n1\n")
    (tmp_path / "t.jsonl").write_text('{"a": 1}\n')
    (tmp_path / "t.txt").write_text("a")
    assert is_table_path(tmp_path / "t.jsonl")
    assert is_table_path(tmp_path / "csvs")
    assert not is_table_path(tmp_path / "t.txt")
    # A text corpus that happens to hold one CSV stays a corpus.
    assert not is_table_path(tmp_path / "notes")


def test_a_directory_of_one_schema_is_one_table(tmp_path: Path) -> None:
    folder = tmp_path / "Orders"
    folder.mkdir()
    pq.write_table(ORDERS.slice(0, 2), folder / "part-0.parquet")
    pq.write_table(ORDERS.slice(2), folder / "part-1.parquet")
    (folder / "_SUCCESS").write_text("")
    (table,) = resolve_tables([folder])
    assert table.name == "orders"
    assert table.rows == 4
    assert table.columns == (("id", "BIGINT"), ("region", "VARCHAR"), ("amount", "DOUBLE"))
    assert len(table.files) == 2


def test_a_directory_of_different_schemas_is_one_table_per_file(tmp_path: Path) -> None:
    pq.write_table(ORDERS, tmp_path / "orders.parquet")
    (tmp_path / "regions.csv").write_text("region,name\neu,Europe\nus,United States\n")
    (tmp_path / "events.jsonl").write_text('{"kind": "a"}\n{"kind": "b"}\n{"kind": "c"}\n')
    tables = {t.name: t for t in resolve_tables([tmp_path])}
    assert sorted(tables) == ["events", "orders", "regions"]
    assert tables["regions"].rows == 2 and tables["events"].rows == 3
    assert tables["regions"].format == "csv" and tables["events"].format == "json"


def test_hive_folders_become_columns(tmp_path: Path) -> None:
    for year in ("2023", "2024"):
        (tmp_path / "sales" / f"year={year}").mkdir(parents=True)
        pq.write_table(ORDERS, tmp_path / "sales" / f"year={year}" / "part.parquet")
    (table,) = resolve_tables([tmp_path / "sales"])
    assert ("year", "VARCHAR") in table.columns
    assert table.rows == 8
    assert len(table.parts) == 2
    # A key=value folder above the table itself is not a column of it.
    (alone,) = resolve_tables([tmp_path / "sales" / "year=2023" / "part.parquet"])
    assert "year" not in dict(alone.columns)


def test_a_delta_table_resolves_to_its_current_files_with_partition_values(
    tmp_path: Path,
) -> None:
    path = tmp_path / "orders_delta"
    write_deltalake(str(path), ORDERS, partition_by=["region"])
    write_deltalake(str(path), ORDERS.slice(0, 1), mode="overwrite")
    (table,) = resolve_tables([path])
    assert table.version == 1
    assert table.rows == 1
    assert [c for c, _ in table.columns] == ["id", "region", "amount"]
    # The overwritten version's files are not part of the table any more.
    assert len(table.files) == 1
    _, meta = load_tables(table_spec([table]))
    assert meta["extra"]["orders_delta columns"] == "id BIGINT, region VARCHAR, amount DOUBLE"


def test_an_empty_delta_table_has_its_columns_and_no_rows(tmp_path: Path) -> None:
    path = tmp_path / "empty"
    DeltaTable.create(str(path), schema=ORDERS.schema)
    (table,) = resolve_tables([path])
    assert (table.rows, table.files) == (0, ())
    assert [c for c, _ in table.columns] == ["id", "region", "amount"]


def test_column_mapping_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "mapped"
    write_deltalake(str(path), ORDERS, configuration={"delta.columnMapping.mode": "name"})
    with pytest.raises(TableContextError, match="column mapping") as caught:
        resolve_tables([path])
    assert isinstance(caught.value, ConfigurationError)
    assert "Parquet" in caught.value.hint


def test_deletion_vectors_enabled_but_unused_are_read(tmp_path: Path) -> None:
    path = tmp_path / "dv"
    write_deltalake(str(path), ORDERS, configuration={"delta.enableDeletionVectors": "true"})
    (table,) = resolve_tables([path])
    assert table.rows == 4


def test_an_unreadable_table_file_is_a_configuration_error(tmp_path: Path) -> None:
    bad = tmp_path / "broken.parquet"
    bad.write_bytes(b"PAR1 this is not parquet at all")
    with pytest.raises(TableContextError, match="not a readable parquet table") as caught:
        resolve_tables([bad])
    assert "rename" in caught.value.hint


def test_an_empty_directory_and_a_mixed_one_are_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(TableContextError, match="holds no table files"):
        resolve_tables([tmp_path / "empty"])
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    pq.write_table(ORDERS, mixed / "orders.parquet")
    (mixed / "README.md").write_text("about the orders")
    with pytest.raises(TableContextError, match=r"mixes table files .*README\.md"):
        resolve_tables([mixed])


def test_several_table_files_make_several_tables(tmp_path: Path) -> None:
    pq.write_table(ORDERS, tmp_path / "a.parquet")
    pq.write_table(ORDERS, tmp_path / "b.parquet")
    tables = table_sources_of([tmp_path / "a.parquet", tmp_path / "b.parquet"])
    assert tables is not None and [t.name for t in tables] == ["a", "b"]
    assert table_sources_of([tmp_path / "a.parquet", "text"]) is None


def test_the_description_names_columns_and_counts_but_no_row(tmp_path: Path) -> None:
    secret = "QUOKKA-5521"
    (tmp_path / "notes.csv").write_text(f"id,note\n1,{secret}\n2,plain\n")
    _, meta = load_tables(table_spec(resolve_tables([tmp_path / "notes.csv"])))
    assert meta["type"] == "Table"
    assert meta["extra"]["table notes"] == "2 rows, 2 columns"
    assert secret not in json.dumps(meta)


def test_a_pinned_delta_table_keeps_its_version_only(tmp_path: Path) -> None:
    path = tmp_path / "orders"
    write_deltalake(str(path), ORDERS)
    write_deltalake(str(path), ORDERS.slice(0, 2), mode="overwrite")
    kept = delta_pin_files(path)
    names = sorted(str(p.relative_to(path)) for p in kept)
    logs = [n for n in names if n.startswith("_delta_log/")]
    assert logs == ["_delta_log/00000000000000000000.json", "_delta_log/00000000000000000001.json"]
    assert len(names) - len(logs) == 1  # the overwritten file is left out

    store = open_store(None, tmp_path / "home")
    try:
        record = pin_context(store, [path])
        assert record is not None
        write_deltalake(str(path), ORDERS, mode="append")  # the table moves on
        (restored,) = restore_context(store, record.content_hash, tmp_path / "scratch")
    finally:
        store.close()
    assert restored != path
    assert DeltaTable(str(restored)).version() == 1
    (table,) = resolve_tables([restored])
    assert table.rows == 2 and table.version == 1
