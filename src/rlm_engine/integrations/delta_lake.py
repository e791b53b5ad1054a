"""Lakehouse state as Delta tables (delta-rs through the optional `deltalake` package).

Every write is an idempotent merge by the table's key in one commit, so a row written twice
is one row and a writer that retries after a crash lands each row exactly once. Concurrent
writers resolve commit conflicts by retrying the whole merge against the new table version
(bounded, with backoff and jitter); creation tolerates a table another process created a
moment earlier. Tables are plain Delta tables with the change data feed on: any Delta
reader (DuckDB, polars, Spark) reads them.

`deltalake` and `pyarrow` are imported inside the methods that need them.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rlm_engine.errors import ConfigurationError, MissingExtraError, RLMError
from rlm_engine.integrations.delta_rows import (
    check_columns,
    from_arrow,
    key_bounds,
    source_table,
    spec_of,
    sql_equals,
)
from rlm_engine.integrations.delta_schemas import TABLES, TableSpec, arrow_schema, pyarrow

if TYPE_CHECKING:
    from deltalake import DeltaTable

MAX_TRIES = 20
"""Attempts of one merge under commit conflicts before `LakehouseConflictError`."""

TABLE_CONFIGURATION: dict[str, str | None] = {"delta.enableChangeDataFeed": "true"}


class LakehouseConflictError(RLMError):
    """A merge lost the commit race too often; the rows were not written."""

    cause_kind = "lakehouse"

    def __init__(self, table: str, tries: int, detail: str) -> None:
        super().__init__(
            f"Delta table {table!r}: merge still conflicted after {tries} tries: {detail}",
            hint="too many writers commit to this table at once; retry later, or write "
            "in fewer, larger batches",
        )
        self.table = table


def _deltalake() -> Any:
    try:
        import deltalake
    except ImportError as exc:
        raise MissingExtraError("Delta lakehouse tables", "delta", "deltalake") from exc
    return deltalake


def _is_conflict(exc: BaseException) -> bool:
    """A commit conflict: another writer committed first; retrying against the new version
    can succeed. delta-rs raises `CommitFailedError`, and for some concurrent-transaction
    checks a plain `DeltaError` whose message says so."""
    from deltalake.exceptions import CommitFailedError, DeltaError

    if isinstance(exc, CommitFailedError):
        return True
    if isinstance(exc, DeltaError):
        text = str(exc).lower()
        return any(word in text for word in ("concurrent", "conflict", "version already exists"))
    return False


class Lakehouse:
    """The jobs' Delta tables under one root: table `T` lives at `f"{root}/{T}"`.

    `root` is a local directory or an object-store URI (`s3://`, `abfss://`, `gs://`, ...);
    `storage_options` go to delta-rs unchanged (credentials, endpoints)."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        storage_options: Mapping[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        text = os.fspath(root)
        if "://" in text:
            self.root = text.rstrip("/")
        else:
            self.root = str(Path(text).expanduser().absolute())
        self.storage_options: dict[str, str] | None = (
            dict(storage_options) if storage_options else None
        )
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._known: set[str] = set()

    @classmethod
    def for_jobs(cls, home: Path, catalog: str, schema: str) -> Lakehouse:
        """The local-mode default: `home/lakehouse/catalog/schema`."""
        return cls(Path(home) / "lakehouse" / catalog / schema)

    def __repr__(self) -> str:
        return f"Lakehouse({self.root!r})"

    def uri(self, table: str) -> str:
        return f"{self.root}/{table}"

    # -- tables ---------------------------------------------------------------------------

    def ensure(self, *tables: str) -> None:
        """Create the missing tables (every known table if none is named). Safe when other
        processes create the same tables at the same time."""
        for name in tables or tuple(TABLES):
            self._ensure_one(spec_of(name))

    def _ensure_one(self, spec: TableSpec) -> None:
        if spec.name in self._known:
            return
        deltalake = _deltalake()
        uri = self.uri(spec.name)
        for attempt in range(MAX_TRIES):
            if deltalake.DeltaTable.is_deltatable(uri, storage_options=self.storage_options):
                break
            try:
                deltalake.DeltaTable.create(
                    uri,
                    arrow_schema(spec),
                    mode="ignore",
                    partition_by=list(spec.partition_by) or None,
                    configuration=TABLE_CONFIGURATION,
                    storage_options=self.storage_options,
                )
                break
            except Exception as exc:
                # Another process committed version 0 between our check and our commit:
                # the table exists now, which is all we wanted.
                if not isinstance(exc, deltalake.exceptions.DeltaError):
                    raise
                if attempt == MAX_TRIES - 1:
                    raise LakehouseConflictError(spec.name, MAX_TRIES, str(exc)) from exc
                self._backoff(attempt)
        self._known.add(spec.name)

    def _open(self, table: str) -> DeltaTable | None:
        deltalake = _deltalake()
        uri = self.uri(table)
        try:
            return deltalake.DeltaTable(uri, storage_options=self.storage_options)
        except deltalake.exceptions.TableNotFoundError:
            return None

    def version(self, table: str) -> int | None:
        """The table's current version, or None if it does not exist yet."""
        spec_of(table)
        dt = self._open(table)
        return None if dt is None else dt.version()

    # -- writes ---------------------------------------------------------------------------

    def merge(
        self,
        table: str,
        rows: Sequence[Mapping[str, Any]],
        *,
        update_when: str | None = None,
    ) -> int:
        """Upsert `rows` by the table's key in one commit; returns rows inserted + updated.

        Columns a row leaves out are null; duplicate keys in `rows` keep the last row;
        `update_when` (a predicate over `t.` target and `s.` source columns) must hold for
        a matched row to be updated. Creates the table if it is missing."""
        spec = spec_of(table)
        _deltalake()  # a missing extra is named before any row is converted
        source = source_table(spec, rows)
        self._ensure_one(spec)
        if source is None:
            return 0
        joined = [f't."{k}" = s."{k}"' for k in spec.keys]
        predicate = " AND ".join(joined + key_bounds(spec, rows))
        last = ""
        for attempt in range(MAX_TRIES):
            dt = self._open(table)
            if dt is None:  # dropped under us: recreate
                self._known.discard(table)
                self._ensure_one(spec)
                continue
            try:
                metrics = (
                    dt.merge(source=source, predicate=predicate, source_alias="s", target_alias="t")
                    .when_matched_update_all(predicate=update_when)
                    .when_not_matched_insert_all()
                    .execute()
                )
            except Exception as exc:
                if not _is_conflict(exc):
                    raise _merge_error(table, update_when, exc) from exc
                last = str(exc)
                self._backoff(attempt)
                continue
            return int(metrics.get("num_target_rows_inserted", 0)) + int(
                metrics.get("num_target_rows_updated", 0)
            )
        raise LakehouseConflictError(table, MAX_TRIES, last)

    def _backoff(self, attempt: int) -> None:
        """Exponential backoff with full jitter, capped at one second."""
        self._sleep(self._rng.uniform(0.0, min(1.0, 0.01 * 2**attempt)))

    # -- reads ----------------------------------------------------------------------------

    def read(self, table: str, *, where: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """The table's rows as dicts (timestamps as float epoch seconds) whose columns equal
        `where`'s values (None matches null); [] if the table does not exist yet."""
        rows = self._query(table, "*", where)
        return [{k: from_arrow(v) for k, v in row.items()} for row in rows]

    def max_of(self, table: str, column: str, *, where: Mapping[str, Any] | None = None) -> Any:
        """The largest `column` value among the rows matching `where` (None if none): one
        aggregate query, cheaper than reading the rows."""
        spec = spec_of(table)
        check_columns(spec, [column])
        rows = self._query(table, f'max("{column}") AS m', where)
        return from_arrow(rows[0]["m"]) if rows else None

    def _query(
        self, table: str, select: str, where: Mapping[str, Any] | None
    ) -> list[dict[str, Any]]:
        spec = spec_of(table)
        filters = dict(where or {})
        check_columns(spec, filters)
        dt = self._open(table)
        if dt is None:
            return []
        # Read through delta-rs' own query engine, not `to_pyarrow_dataset()`: the Arrow
        # dataset keeps a delta-rs file system alive whose threads abort the interpreter
        # at exit when it is collected late.
        from deltalake import QueryBuilder

        terms = [sql_equals(spec, column, value) for column, value in filters.items()]
        sql = f"SELECT {select} FROM t" + (" WHERE " + " AND ".join(terms) if terms else "")
        data = pyarrow().table(QueryBuilder().register("t", dt).execute(sql))
        rows: list[dict[str, Any]] = data.to_pylist()
        return rows


def _merge_error(table: str, update_when: str | None, exc: Exception) -> Exception:
    """A merge that failed for a reason other than a conflict, as a typed error if it was
    the caller's predicate; anything else is re-raised as it was."""
    from deltalake.exceptions import DeltaError

    if update_when is not None and isinstance(exc, DeltaError | ValueError):
        return ConfigurationError(
            f"Delta table {table!r}: merge with update_when={update_when!r} failed: {exc}",
            hint="update_when is a SQL predicate over t.<column> (target) and s.<column> (source)",
        )
    return exc
