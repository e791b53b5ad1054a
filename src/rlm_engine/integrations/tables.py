"""What the jobs need of their tables, whichever system holds them.

`Lakehouse` (Delta tables through delta-rs, local or on object storage) and
`UnityCatalogTables` (Unity Catalog tables through a SQL warehouse) both satisfy `TableStore`
structurally; the jobs are written against it, so the mode picks the store and nothing else
changes. The contract every implementation keeps: `merge` is an idempotent upsert by the
table's key (a row written twice is one row), `read` returns timestamps as float epoch
seconds, and a table that does not exist yet reads as empty.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class TableStore(Protocol):
    """The jobs' tables (names from `delta_schemas.TABLES`)."""

    @property
    def root(self) -> str:
        """Where the tables live, for messages and for the processes a job starts: a
        directory or URI for Delta tables, `catalog.schema` for Unity Catalog."""
        ...

    def uri(self, table: str) -> str:
        """Where `table` lives (a path, a URI or a three-part name)."""
        ...

    def ensure(self, *tables: str) -> None:
        """Create the missing tables (every known table if none is named)."""
        ...

    def merge(
        self, table: str, rows: Sequence[Mapping[str, Any]], *, update_when: str | None = None
    ) -> int:
        """Upsert `rows` by the table's key; `update_when` (over `t.` target and `s.` source
        columns) must hold for a matched row to be updated. Returns rows inserted + updated."""
        ...

    def read(self, table: str, *, where: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """The rows whose columns equal `where`'s values (None matches null)."""
        ...

    def max_of(self, table: str, column: str, *, where: Mapping[str, Any] | None = None) -> Any:
        """The largest `column` value among the rows matching `where`, None if none."""
        ...

    def version(self, table: str) -> int | None:
        """The table's current version, None if it does not exist yet."""
        ...
