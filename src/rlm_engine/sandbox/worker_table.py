"""Worker side of table contexts: the ``context`` table object and ``sql()`` (stdlib only
until the first query).

The host resolves a table context (a Delta table's current files, Parquet, CSV or JSONL
files) into a spec that names the staged files, the columns and the row count, so
loading the context and describing it to the root model read no data. The first
``sql()`` call opens an in-process DuckDB connection with one view per table; DuckDB then
reads the staged files where they lie, never copying them into memory whole.

The view SQL is built here and nowhere else: the host describes a table by running the
same statement, so the schema the root model is shown is the one ``sql()`` sees.
"""

from __future__ import annotations

import os
import resource
import threading
from collections.abc import Iterator, Mapping
from typing import Any, cast

TABLES_EXTRA_HINT = "pip install 'rlm-engine[tables]'"
MAX_SAMPLE_ROWS = 1000
MIB = 1024 * 1024
MIN_MEMORY_LIMIT = 64 * MIB
DEFAULT_MEMORY_LIMIT = 1024 * MIB
"""DuckDB's own memory limit where the process has no address-space limit."""


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _quote_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _file_list(files: list[str]) -> str:
    return "[" + ", ".join(_quote_str(path) for path in files) + "]"


# Partition columns come from the spec's constants only: DuckDB's own guess from
# ``key=value`` folders would see the host's paths and the sandbox's staged ones apart.
_OPTIONS = "union_by_name = true, hive_partitioning = false"


def _reader(fmt: str, files: list[str]) -> str:
    listed = _file_list(files)
    if fmt == "parquet":
        return f"read_parquet({listed}, {_OPTIONS})"
    if fmt == "csv":
        return f"read_csv({listed}, {_OPTIONS})"
    if fmt == "json":
        return f"read_json({listed}, format = 'newline_delimited', {_OPTIONS})"
    raise ValueError(f"unknown table format {fmt!r}")


def part_sql(fmt: str, part: Mapping[str, Any], columns: list[list[str]] | None) -> str:
    """One part of a table: its files, with the constant columns a Delta table keeps in
    its log instead of the files (partition values) added in the table's column order."""
    files = [str(path) for path in part["files"]]
    constants = {str(k): v for k, v in cast(list[list[Any]], part.get("constants") or [])}
    if not constants:
        return f"SELECT * FROM {_reader(fmt, files)}"
    if not columns:
        raise ValueError("a table part with constant columns needs the table's columns")
    chosen: list[str] = []
    for name, kind in columns:
        if name in constants:
            value = constants[name]
            literal = "NULL" if value is None else _quote_str(str(value))
            chosen.append(f"CAST({literal} AS {kind}) AS {_quote_ident(name)}")
        else:
            chosen.append(_quote_ident(name))
    return f"SELECT {', '.join(chosen)} FROM {_reader(fmt, files)}"


def table_sql(table: Mapping[str, Any]) -> str:
    """The SELECT a table's view stands for."""
    fmt = str(table["format"])
    columns = cast(list[list[str]] | None, table.get("columns"))
    parts = cast(list[Mapping[str, Any]], table["parts"])
    if not parts:
        # A table without files (an empty Delta table): its columns, no rows.
        if not columns:
            raise ValueError(f"table {table.get('name')!r} has neither files nor columns")
        chosen = ", ".join(
            f"CAST(NULL AS {kind}) AS {_quote_ident(name)}" for name, kind in columns
        )
        return f"SELECT {chosen} WHERE false"
    return "\nUNION ALL BY NAME\n".join(part_sql(fmt, part, columns) for part in parts)


def _memory_limit() -> int:
    """DuckDB's memory budget: a quarter of the address space the sandbox allows this
    process (the interpreter, the cells' values and DuckDB share it)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY or soft <= 0:
        return DEFAULT_MEMORY_LIMIT
    return max(MIN_MEMORY_LIMIT, soft // 4)


def _threads() -> int:
    return 2 if (os.cpu_count() or 1) >= 2 else 1


class TablesUnavailable(ImportError):
    """DuckDB is not installed where the REPL runs."""


class Database:
    """The REPL's DuckDB connection with one view per table (opened on first use)."""

    def __init__(self, tables: list[Mapping[str, Any]]) -> None:
        self._tables = tables
        self._lock = threading.Lock()
        self._connection: Any = None

    def _connect(self) -> Any:
        try:
            import duckdb
        except ImportError:
            raise TablesUnavailable(
                "sql() needs the duckdb package in the sandbox's Python, and it is not "
                f"installed. Install the tables extra: {TABLES_EXTRA_HINT}"
            ) from None
        tmp = os.environ.get("TMPDIR") or "/tmp"
        config = {
            "threads": _threads(),
            "memory_limit": f"{_memory_limit() // MIB}MB",
            "temp_directory": os.path.join(tmp, "duckdb"),
            # The sandbox has no network: never try to fetch an extension.
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
        }
        connection = duckdb.connect(":memory:", config=cast(Any, config))
        for table in self._tables:
            name = _quote_ident(str(table["name"]))
            connection.execute(f"CREATE VIEW {name} AS {table_sql(table)}")
        only = str(self._tables[0]["name"]) if len(self._tables) == 1 else "context"
        if only != "context":
            connection.execute(f"CREATE VIEW context AS SELECT * FROM {_quote_ident(only)}")
        return connection

    def sql(self, query: str, df: bool = False) -> Any:
        """Run ``query`` (DuckDB SQL) over the context's tables; rows as a list of dicts,
        or with ``df=True`` a pandas DataFrame (a pyarrow Table without pandas)."""
        if not isinstance(query, str):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise TypeError(f"sql() needs the query as a str, not {type(query).__name__}")
        with self._lock:
            if self._connection is None:
                self._connection = self._connect()
            if df:
                return _frame(self._connection.sql(query))
            cursor = self._connection.execute(query)
            if cursor.description is None:  # a statement without a result
                return []
            names = [str(column[0]) for column in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _frame(relation: Any) -> Any:
    if relation is None:  # a statement without a result
        return None
    try:
        import pandas  # noqa: F401  # pyright: ignore[reportUnusedImport, reportMissingImports]
    except ImportError:
        return relation.to_arrow_table()
    return relation.df()


class Table:
    """One table of the context: ``name`` (its SQL view), ``columns``, ``schema``
    (column -> DuckDB type), ``rows`` (row count); ``sample(n)`` gives a few rows and
    ``sql(query)`` runs a query over every table of the context."""

    def __init__(self, spec: Mapping[str, Any], database: Database) -> None:
        self.name = str(spec["name"])
        columns = cast(list[list[str]], spec.get("columns") or [])
        self.schema: dict[str, str] = {str(n): str(t) for n, t in columns}
        self.columns = list(self.schema)
        self.rows = int(spec.get("rows", 0))
        self.format = str(spec["format"])
        self.version: int | None = spec.get("version")
        self.source = str(spec.get("source") or self.name)
        self.sql = database.sql

    def sample(self, n: int = 5) -> list[dict[str, Any]]:
        """The first ``n`` rows (at most 1000) as dicts."""
        count = min(max(int(n), 0), MAX_SAMPLE_ROWS)
        return cast(
            list[dict[str, Any]], self.sql(f"SELECT * FROM {_quote_ident(self.name)} LIMIT {count}")
        )

    def __len__(self) -> int:
        return self.rows

    def __repr__(self) -> str:
        shown = ", ".join(f"{n} {t}" for n, t in list(self.schema.items())[:20])
        more = f", ... {len(self.schema) - 20} more" if len(self.schema) > 20 else ""
        return f"<table {self.name}: {self.rows:,} rows; {shown}{more}>"


class Tables(Mapping[str, Table]):
    """Several tables: ``context[name]`` is a `Table`; ``sql(query)`` sees them all."""

    def __init__(self, tables: list[Table], database: Database) -> None:
        self._tables = {table.name: table for table in tables}
        self.sql = database.sql

    def __getitem__(self, name: str) -> Table:
        return self._tables[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._tables)

    def __len__(self) -> int:
        return len(self._tables)

    def __repr__(self) -> str:
        listed = ", ".join(f"{t.name} ({t.rows:,} rows)" for t in self._tables.values())
        return f"<{len(self._tables)} tables: {listed}>"


MAX_COLUMNS_TEXT = 200
"""The prompt's metadata keeps strings up to this long: longer column lists are split."""


def _column_lines(table: Table) -> list[str]:
    """The table's ``name TYPE`` list cut into pieces that fit a metadata string."""
    pieces: list[str] = []
    current = ""
    for name, kind in table.schema.items():
        item = f"{name} {kind}"
        candidate = f"{current}, {item}" if current else item
        if len(candidate) > MAX_COLUMNS_TEXT and current:
            pieces.append(current)
            candidate = item
        current = candidate[:MAX_COLUMNS_TEXT]
    if current:
        pieces.append(current)
    return pieces


def _table_extra(tables: list[Table]) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    for table in tables:
        extra[f"table {table.name}"] = f"{table.rows:,} rows, {len(table.columns)} columns"
        for index, piece in enumerate(_column_lines(table)):
            suffix = "" if index == 0 else f" ({index + 1})"
            extra[f"{table.name} columns{suffix}"] = piece
    return extra


def load_tables(spec: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The ``context`` value of a ``table`` spec and its metadata: table names, columns
    with types and row counts, never a row."""
    specs = cast(list[Mapping[str, Any]], spec["tables"])
    database = Database(specs)
    tables = [Table(item, database) for item in specs]
    value: Any = tables[0] if len(tables) == 1 else Tables(tables, database)
    kind = "Table" if len(tables) == 1 else "Tables"
    total_bytes = int(spec.get("bytes", 0))
    meta: dict[str, Any] = {
        "type": kind,
        "total_chars": total_bytes,
        "chunk_lengths": [],
        "preview": "",
        "files": int(spec.get("files", 0)),
        "extra": {"size_unit": "bytes", **_table_extra(tables)},
    }
    return value, meta
