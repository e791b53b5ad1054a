"""Built-in tool sets a run can ask for by name (`RunSpec.tools`, `rlm ask --tool NAME`).

A tool runs on the host, with the host's credentials, and a cell sees only what it returns.
Only edges the operator controls (the CLI, the jobs) take these names: the server's request
models have no such field, since a tenant must never borrow the server's credentials.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from rlm_engine.errors import ConfigurationError

Tools = dict[str, Callable[..., Any]]


def _databricks_sql() -> Tools:
    """`execute_sql` on a Databricks SQL warehouse (the `databricks` extra). The workspace
    is found with the SDK's standard authentication at the first call, so a run (or an
    offline replay) that never queries needs no workspace."""
    from rlm_engine.integrations.databricks.sql_tool import TOOL_NAME, execute_sql_tool

    @functools.cache
    def tool() -> Callable[..., Any]:
        from rlm_engine.integrations.databricks.sql import SqlWarehouse
        from rlm_engine.integrations.databricks.workspace import workspace_client

        return execute_sql_tool(SqlWarehouse(workspace_client()))

    async def execute_sql(query: str, parameters: Mapping[str, Any] | None = None) -> Any:
        """Run one SQL statement on the workspace's SQL warehouse; rows as dicts.

        Bind values as named parameters (`:name` in the query, `{"name": value}`)."""
        run = await asyncio.to_thread(tool)
        return await run(query, parameters)

    return {TOOL_NAME: execute_sql}


TOOL_SETS: Mapping[str, Callable[[], Tools]] = {"databricks-sql": _databricks_sql}


def tools_for(names: Sequence[str]) -> Tools:
    """The tools of the named sets; an unknown name is a `ConfigurationError` listing them."""
    tools: Tools = {}
    for name in names:
        make = TOOL_SETS.get(name)
        if make is None:
            raise ConfigurationError(
                f"unknown tool set {name!r}", hint=f"known tool sets: {', '.join(TOOL_SETS)}"
            )
        tools.update(make())
    return tools
