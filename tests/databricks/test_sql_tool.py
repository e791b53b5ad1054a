"""`execute_sql` as a host tool: a real REPL cell queries the double's warehouse, and the
workspace credentials stay on the host."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from databricks_double import DatabricksDouble

from rlm_engine import RLM
from rlm_engine.integrations.databricks.sql import SqlStatementError, SqlWarehouse
from rlm_engine.integrations.databricks.sql_tool import TOOL_NAME, execute_sql_tool, sql_tools
from rlm_engine.integrations.databricks.workspace import workspace_client
from rlm_engine.lm.scripted import ScriptedModel
from rlm_engine.types import Message

CELL = """
import os
rows = execute_sql("SELECT i * :k AS v FROM range(3) AS t(i) ORDER BY i", {"k": 10})
try:
    execute_sql("SELECT * FROM main.rlm.absent_table")
    failure = "none"
except Exception as exc:
    failure = "TABLE_OR_VIEW_NOT_FOUND" if "TABLE_OR_VIEW_NOT_FOUND" in str(exc) else str(exc)
seen = sorted(k for k, v in os.environ.items() if k.startswith("DATABRICKS") or "dapi" in v)
FINAL(f"{[r['v'] for r in rows]}|{failure}|{seen}")
"""


def fence(code: str) -> str:
    return f"```repl\n{code}\n```"


@pytest.fixture
def double(tmp_path: Path) -> Iterator[DatabricksDouble]:
    with DatabricksDouble(tmp_path / "ws") as d:
        yield d


@pytest.fixture
def warehouse(double: DatabricksDouble) -> SqlWarehouse:
    return SqlWarehouse(workspace_client(host=double.url, token=double.token))


def test_a_cell_queries_the_warehouse_and_never_sees_the_credentials(
    double: DatabricksDouble, warehouse: SqlWarehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABRICKS_HOST", double.url)
    monkeypatch.setenv("DATABRICKS_TOKEN", double.token)

    def root(messages: Sequence[Message]) -> str:
        assert f"`{TOOL_NAME}`" in messages[0].content  # the prompt offers the tool
        return fence(CELL)

    with RLM(ScriptedModel(root), tools=sql_tools(warehouse)) as rlm:
        result = rlm.run("what is in the warehouse?")

    assert result.stop_reason == "final", result
    assert result.answer == "[0, 10, 20]|TABLE_OR_VIEW_NOT_FOUND|[]"
    statements = double.sql_statements
    assert any("range(3)" in s for s in statements)
    assert any("main.rlm.absent_table" in s for s in statements)


def test_too_many_rows_asks_for_a_narrower_query(warehouse: SqlWarehouse) -> None:
    tool = execute_sql_tool(warehouse, max_rows=5)
    assert len(asyncio.run(tool("SELECT * FROM range(5)"))) == 5
    with pytest.raises(SqlStatementError) as caught:
        asyncio.run(tool("SELECT * FROM range(50)"))
    assert "more than 5 rows" in str(caught.value) and "LIMIT" in caught.value.hint


def test_a_call_without_sql_text_is_refused(warehouse: SqlWarehouse) -> None:
    tool = execute_sql_tool(warehouse)
    with pytest.raises(Exception, match="SQL text"):
        asyncio.run(tool(""))
    with pytest.raises(Exception, match="dict of name"):
        asyncio.run(tool("SELECT 1", [1]))
