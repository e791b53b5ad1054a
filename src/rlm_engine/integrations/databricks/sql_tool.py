"""`execute_sql` in the REPL: SQL on a Databricks SQL warehouse, run on the host.

The tool is a host tool: a cell calls `execute_sql("SELECT ...", {"name": value})`, the call
crosses to the host as the query text and its parameters, and the host runs it with its own
workspace client. The workspace credentials never enter the sandbox; the cell sees rows only.
Use it in local mode against a workspace:

    RLM(model, tools=sql_tools(SqlWarehouse(workspace_client())))
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from rlm_engine.errors import ConfigurationError
from rlm_engine.integrations.databricks.sql import SqlStatementError, SqlWarehouse

TOOL_NAME = "execute_sql"
MAX_ROWS = 5000
"""Rows a cell gets back at most: more is an error that asks for a narrower query, so a cell
never works on a silently cut result."""

SqlTool = Callable[..., Coroutine[Any, Any, list[dict[str, Any]]]]


def execute_sql_tool(warehouse: SqlWarehouse, *, max_rows: int = MAX_ROWS) -> SqlTool:
    """The `execute_sql(query, parameters=None)` host tool over `warehouse`."""

    async def execute_sql(
        query: str, parameters: Mapping[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """Run one SQL statement on the workspace's SQL warehouse; rows as dicts.

        Bind values as named parameters (`:name` in the query, `{"name": value}`)."""
        if not isinstance(query, str) or not query.strip():  # pyright: ignore[reportUnnecessaryIsInstance]
            raise ConfigurationError(
                "execute_sql needs the SQL text as its first argument",
                hint='call execute_sql("SELECT ...")',
            )
        if parameters is not None and not isinstance(parameters, Mapping):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise ConfigurationError(
                "execute_sql parameters must be a dict of name -> value",
                hint='execute_sql("SELECT * FROM t WHERE id = :id", {"id": 7})',
            )
        rows = await asyncio.to_thread(warehouse.execute, query, parameters, row_limit=max_rows + 1)
        if len(rows) > max_rows:
            raise SqlStatementError(
                f"execute_sql: the query returned more than {max_rows} rows",
                state="TOO_MANY_ROWS",
                hint="aggregate in SQL, filter with WHERE, or page with LIMIT/OFFSET",
            )
        return rows

    return execute_sql


def sql_tools(warehouse: SqlWarehouse, *, max_rows: int = MAX_ROWS) -> dict[str, SqlTool]:
    """The tools table for `RLM(tools=...)`: `{"execute_sql": ...}`."""
    return {TOOL_NAME: execute_sql_tool(warehouse, max_rows=max_rows)}


def workspace_sql_tools(
    profile: str | None = None, warehouse_id: str | None = None
) -> dict[str, SqlTool]:
    """`sql_tools` over the workspace the SDK's standard authentication finds."""
    from rlm_engine.integrations.databricks.workspace import workspace_client

    return sql_tools(SqlWarehouse(workspace_client(profile), warehouse_id))
