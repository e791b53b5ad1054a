"""SQL on a Databricks SQL warehouse through the Statement Execution API.

A statement is submitted with a short server-side wait; one that is still running after it
is polled with capped backoff until it finishes or `timeout_s` runs out (then it is
cancelled). Results come back INLINE as JSON arrays, chunk by chunk, and are converted to
Python values by the column types of the result's manifest. Values are always bound as
named parameters (`:name` in the statement), never formatted into the text.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from rlm_engine.errors import ConfigurationError, RLMError
from rlm_engine.integrations.databricks.workspace import workspace_error

if TYPE_CHECKING:
    from databricks.sdk import WorkspaceClient
    from databricks.sdk.service.sql import (
        ResultManifest,
        StatementParameterListItem,
        StatementResponse,
    )

WAIT_TIMEOUT = "30s"
"""How long the server holds the first request (5-50 s is allowed; 0 returns at once)."""
DEFAULT_TIMEOUT_S = 600.0
_INTEGER_TYPES = frozenset({"BYTE", "SHORT", "INT", "LONG"})
_FLOAT_TYPES = frozenset({"FLOAT", "DOUBLE", "DECIMAL"})
_DONE = frozenset({"SUCCEEDED", "FAILED", "CANCELED", "CLOSED"})


class SqlStatementError(RLMError):
    """A statement failed, was cancelled or ran out of time; the message is the warehouse's."""

    cause_kind = "databricks"

    def __init__(
        self, message: str, *, statement_id: str = "", state: str = "", hint: str | None = None
    ) -> None:
        super().__init__(
            message,
            hint=hint
            or "the message is the warehouse's own: fix the statement, or check that the "
            "tables exist and the identity in use may read them",
        )
        self.statement_id = statement_id
        self.state = state

    @property
    def not_found(self) -> bool:
        """Whether the statement named a table or view that does not exist."""
        return "TABLE_OR_VIEW_NOT_FOUND" in str(self)


class SqlWarehouse:
    """One SQL warehouse of a workspace: `execute(query, parameters)` returns rows as dicts.

    Without `warehouse_id` the first use picks one: a running warehouse if there is one
    (no start-up wait), else a starting one, else any (the statement starts it)."""

    def __init__(
        self,
        w: WorkspaceClient,
        warehouse_id: str | None = None,
        *,
        catalog: str | None = None,
        schema: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        wait_timeout: str = WAIT_TIMEOUT,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._w = w
        self.wait_timeout = wait_timeout
        self._warehouse_id = warehouse_id or None
        self.catalog = catalog
        self.schema = schema
        self.timeout_s = timeout_s
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"SqlWarehouse({self._warehouse_id or '<auto>'})"

    @property
    def warehouse_id(self) -> str:
        if self._warehouse_id is None:
            self._warehouse_id = discover_warehouse(self._w)
        return self._warehouse_id

    def execute(
        self,
        query: str,
        parameters: Mapping[str, Any] | None = None,
        *,
        row_limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """The statement's rows (column name -> value; [] for a statement without a result).

        `row_limit` caps the rows the warehouse returns (more are dropped, not an error);
        without it a result too large to return inline is a `SqlStatementError`.

        Integers, floats and booleans come back as Python values, NULL as None, anything
        else (timestamps, dates, decimals' exact text aside) as the warehouse's text."""
        from databricks.sdk.service.sql import (
            Disposition,
            ExecuteStatementRequestOnWaitTimeout,
            Format,
        )

        params = bind(parameters or {})
        try:
            response = self._w.statement_execution.execute_statement(
                query,
                self.warehouse_id,
                catalog=self.catalog,
                schema=self.schema,
                parameters=params or None,
                wait_timeout=self.wait_timeout,
                on_wait_timeout=ExecuteStatementRequestOnWaitTimeout.CONTINUE,
                disposition=Disposition.INLINE,
                format=Format.JSON_ARRAY,
                row_limit=row_limit,
            )
            response = self._wait(response)
            return self._rows(response, limited=row_limit is not None)
        except RLMError:
            raise
        except Exception as exc:
            raise workspace_error(exc, "running a SQL statement") from exc

    def _wait(self, response: StatementResponse) -> StatementResponse:
        deadline = time.monotonic() + self.timeout_s
        delay = 0.05
        while _state(response) not in _DONE:
            if time.monotonic() >= deadline:
                self._cancel(response.statement_id or "")
                raise SqlStatementError(
                    f"statement {response.statement_id} still {_state(response)} after "
                    f"{self.timeout_s:.0f} s; cancelled",
                    statement_id=response.statement_id or "",
                    state="TIMEOUT",
                    hint="a stopped warehouse takes minutes to start: start it first, or "
                    "allow more time",
                )
            self._sleep(delay)
            delay = min(2.0, delay * 2)
            response = self._w.statement_execution.get_statement(response.statement_id or "")
        state = _state(response)
        if state != "SUCCEEDED":
            status = response.status
            error = status.error if status is not None else None
            message = (error.message if error is not None else None) or f"statement {state}"
            raise SqlStatementError(message, statement_id=response.statement_id or "", state=state)
        return response

    def _cancel(self, statement_id: str) -> None:
        try:
            self._w.statement_execution.cancel_execution(statement_id)
        except Exception:  # best effort: the timeout error says what matters
            return

    def _rows(self, response: StatementResponse, *, limited: bool) -> list[dict[str, Any]]:
        manifest = response.manifest
        if manifest is None or manifest.schema is None or not manifest.schema.columns:
            return []
        if manifest.truncated and not limited:
            raise SqlStatementError(
                f"statement {response.statement_id}: the result was truncated",
                statement_id=response.statement_id or "",
                state="TRUNCATED",
                hint="select fewer rows or columns (LIMIT, WHERE, aggregates)",
            )
        names, converters = _columns(manifest)
        rows: list[dict[str, Any]] = []
        chunk = response.result
        while chunk is not None:
            for values in chunk.data_array or []:
                rows.append(
                    {
                        name: convert(value)
                        for name, convert, value in zip(names, converters, values, strict=True)
                    }
                )
            if chunk.next_chunk_index is None:
                break
            chunk = self._w.statement_execution.get_statement_result_chunk_n(
                response.statement_id or "", chunk.next_chunk_index
            )
        return rows


def discover_warehouse(w: WorkspaceClient) -> str:
    """The id of a warehouse to use: running first, then starting, then any other."""
    try:
        warehouses = list(w.warehouses.list())
    except Exception as exc:
        raise workspace_error(exc, "listing SQL warehouses") from exc
    rank = {"RUNNING": 0, "STARTING": 1}
    usable = [
        wh
        for wh in warehouses
        if wh.id and (wh.state is None or wh.state.value not in ("DELETED", "DELETING"))
    ]
    if not usable:
        raise ConfigurationError(
            "the workspace has no SQL warehouse to run statements on",
            hint="create one (SQL > SQL warehouses), or name one with --warehouse-id",
        )
    usable.sort(key=lambda wh: rank.get(wh.state.value if wh.state else "", 2))
    return str(usable[0].id)


def bind(parameters: Mapping[str, Any]) -> list[StatementParameterListItem]:
    """Named parameters for the API: each value as text with its SQL type."""
    from databricks.sdk.service.sql import StatementParameterListItem

    items: list[StatementParameterListItem] = []
    for name, value in parameters.items():
        kind, text = sql_value(name, value)
        items.append(StatementParameterListItem(name=name, type=kind, value=text))
    return items


def sql_value(name: str, value: Any) -> tuple[str, str | None]:
    """(SQL type, text) of one parameter value; None is a NULL."""
    if value is None:
        return "STRING", None
    if isinstance(value, bool):
        return "BOOLEAN", "true" if value else "false"
    if isinstance(value, int):
        return "BIGINT", str(value)
    if isinstance(value, float):
        return "DOUBLE", repr(value)
    if isinstance(value, str):
        return "STRING", value
    if isinstance(value, datetime):
        stamp = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return "TIMESTAMP", stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(value, date):
        return "DATE", value.isoformat()
    raise ConfigurationError(
        f"SQL parameter {name!r} is a {type(value).__name__}",
        hint="bind strings, numbers, booleans, datetimes, dates or None",
    )


def parse_timestamp(text: str) -> float:
    """Epoch seconds of a warehouse timestamp (ISO 8601; no offset means UTC)."""
    stamp = datetime.fromisoformat(text.replace(" ", "T", 1))
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return stamp.timestamp()


def _state(response: StatementResponse) -> str:
    status = response.status
    if status is None or status.state is None:
        return "PENDING"
    return status.state.value


def _columns(manifest: ResultManifest) -> tuple[list[str], list[Callable[[Any], Any]]]:
    assert manifest.schema is not None and manifest.schema.columns is not None
    names: list[str] = []
    converters: list[Callable[[Any], Any]] = []
    for column in manifest.schema.columns:
        names.append(column.name or f"col{len(names)}")
        kind = column.type_name.value if column.type_name is not None else "STRING"
        converters.append(_converter(kind))
    return names, converters


def _converter(kind: str) -> Callable[[Any], Any]:
    def convert(value: Any) -> Any:
        if value is None:
            return None
        if kind in _INTEGER_TYPES:
            return int(value)
        if kind in _FLOAT_TYPES:
            return float(value)
        if kind == "BOOLEAN":
            return str(value).lower() == "true"
        return value

    return convert
