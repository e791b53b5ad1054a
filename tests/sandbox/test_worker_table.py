"""Table contexts in the real worker: the table object, ``sql()`` over DuckDB inside the
sandbox (bubblewrap under ``strict``), and the library path."""

from __future__ import annotations

import importlib
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from deltalake import write_deltalake
from sandbox_fakes import FakeHost

from rlm_engine import RLM
from rlm_engine.integrations.table_context import resolve_tables, table_spec
from rlm_engine.lm.scripted import ScriptedModel
from rlm_engine.sandbox.local import LocalSandbox
from rlm_engine.sandbox.worker_table import TablesUnavailable, load_tables
from rlm_engine.types import Message

# pyarrow ships no type stubs.
pa: Any = importlib.import_module("pyarrow")
pc: Any = importlib.import_module("pyarrow.compute")
pq: Any = importlib.import_module("pyarrow.parquet")


ORDERS = pa.table(
    {
        "id": pa.array(range(1, 7), pa.int64()),
        "region": ["eu", "us", "eu", "apac", "us", "eu"],
        "amount": [1.5, 2.0, 3.0, 4.25, 5.0, 0.5],
    }
)


@pytest.fixture
async def strict(host: FakeHost, tmp_path: Path) -> AsyncIterator[LocalSandbox]:
    box = LocalSandbox(host, isolation="strict", workdir_parent=tmp_path)
    await box.start()
    try:
        yield box
    finally:
        await box.close()


async def _run(sandbox: LocalSandbox, code: str) -> str:
    result = await sandbox.execute(code, timeout_s=60)
    assert result.status == "ok", result.error
    return result.output


def _totals() -> dict[str, float]:
    grouped = ORDERS.group_by("region").aggregate([("amount", "sum")])
    return dict(zip(grouped["region"].to_pylist(), grouped["amount_sum"].to_pylist(), strict=True))


async def test_sql_over_a_parquet_directory_under_bubblewrap(
    strict: LocalSandbox, tmp_path: Path
) -> None:
    folder = tmp_path / "orders"
    folder.mkdir()
    pq.write_table(ORDERS.slice(0, 3), folder / "part-0.parquet")
    pq.write_table(ORDERS.slice(3), folder / "part-1.parquet")
    described = strict.describe_context(folder)
    meta = await strict.load_context(folder)
    assert strict.isolation_level == "bubblewrap"
    assert meta == described
    assert meta.type == "Table" and meta.extra["table orders"] == "6 rows, 3 columns"
    out = await _run(
        strict,
        "rows = sql('select region, sum(amount) as total from orders group by region')\n"
        "print(sorted((r['region'], r['total']) for r in rows))\n"
        "print(sql('select count(*) as n from context')[0]['n'], context.rows, context.name)\n"
        "print(context.columns, context.schema['amount'], len(context.sample(2)))\n"
        "print(type(sql('select * from orders', df=True)).__name__)",
    )
    lines = out.splitlines()
    assert lines[0] == str(sorted(_totals().items()))
    assert lines[1] == "6 6 orders"
    assert lines[2] == "['id', 'region', 'amount'] DOUBLE 2"
    assert lines[3] == "Table"  # pyarrow's, as this environment has no pandas


async def test_duckdb_stays_within_the_sandbox_budget(strict: LocalSandbox, tmp_path: Path) -> None:
    pq.write_table(ORDERS, tmp_path / "orders.parquet")
    await strict.load_context(tmp_path / "orders.parquet")
    out = await _run(
        strict,
        "s = sql(\"select current_setting('threads') as t, \"\n"
        "        \"current_setting('memory_limit') as m\")[0]\n"
        "print(s['t']); print(s['m'])",
    )
    threads, memory = out.splitlines()
    assert int(threads) <= 2
    number, unit = memory.split()
    assert unit in ("MiB", "MB", "KiB") and float(number) < 2048


async def test_a_partitioned_delta_table_reads_its_partition_values(
    strict: LocalSandbox, tmp_path: Path
) -> None:
    path = tmp_path / "sales"
    write_deltalake(str(path), ORDERS, partition_by=["region"])
    await strict.load_context(path)
    out = await _run(
        strict,
        "print(sorted((r['region'], r['total']) for r in "
        "sql('select region, sum(amount) total from sales group by region')))\n"
        "print(context.version)",
    )
    assert out.splitlines() == [str(sorted(_totals().items())), "0"]


async def test_several_tables_map_names_and_join(sandbox: LocalSandbox, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    pq.write_table(ORDERS, data / "orders.parquet")
    (data / "regions.csv").write_text("region,label\neu,Europe\nus,Americas\napac,Asia\n")
    meta = await sandbox.load_context(data)
    assert meta.type == "Tables"
    out = await _run(
        sandbox,
        "print(sorted(context), context['regions'].rows)\n"
        "r = sql('select r.label, count(*) n from orders o join regions r using (region) '\n"
        "        'group by r.label order by n desc, r.label')\n"
        "print(r[0])",
    )
    assert out.splitlines() == ["['orders', 'regions'] 3", "{'label': 'Europe', 'n': 3}"]


async def test_sql_comes_back_after_a_cell_replaces_it(
    sandbox: LocalSandbox, tmp_path: Path
) -> None:
    pq.write_table(ORDERS, tmp_path / "orders.parquet")
    await sandbox.load_context(tmp_path / "orders.parquet")
    await _run(sandbox, "sql = None\ncontext = 'gone'")
    assert await _run(sandbox, "print(sql('select max(id) m from orders')[0]['m'])") == "6\n"
    assert "sql" not in await sandbox.list_vars()
    # A text context afterwards takes sql() away again.
    await sandbox.load_context("plain text")
    result = await sandbox.execute("sql('select 1')", timeout_s=30)
    assert result.status == "error" and "NameError" in (result.error or "")


def test_sql_without_duckdb_names_the_tables_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pq.write_table(ORDERS, tmp_path / "orders.parquet")
    table, _ = load_tables(table_spec(resolve_tables([tmp_path / "orders.parquet"])))
    monkeypatch.setitem(sys.modules, "duckdb", None)
    with pytest.raises(TablesUnavailable, match=r"pip install 'rlm-engine\[tables\]'"):
        table.sql("select 1")


def test_the_library_path_gets_a_table(tmp_path: Path) -> None:
    folder = tmp_path / "orders"
    folder.mkdir()
    pq.write_table(ORDERS, folder / "orders.parquet")
    cells = [
        "```repl\n"
        "top = sql('select region, sum(amount) t from orders group by region "
        "order by t desc limit 1')[0]\n"
        "print(type(context).__name__, context.rows)\n"
        "```",
        "```repl\nFINAL(f\"{top['region']}={top['t']}\")\n```",
    ]

    def root(messages: Sequence[Message]) -> str:
        return cells[min(sum(m.role == "assistant" for m in messages), 1)]

    with RLM(ScriptedModel(root), ScriptedModel(lambda m: "unused")) as rlm:
        result = rlm.run("Which region sells most?", context=folder)
    region, total = max(_totals().items(), key=lambda item: item[1])
    assert result.stop_reason == "final"
    assert result.answer == f"{region}={total}"
    assert float(pc.sum(ORDERS["amount"]).as_py()) > total  # the answer is one group's
