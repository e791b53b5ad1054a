"""Table contexts on the host: tell a table context from a text one, resolve it into the
files DuckDB reads, and describe it (columns with types, row count) without reading rows.

A table context is a Delta table directory (it has ``_delta_log/``), a ``.parquet``,
``.csv`` or ``.jsonl`` file, or a directory of them. A Delta table resolves to the Parquet
files of its current version, with its partition values as constants (Delta keeps them
in the log, not in the files); features DuckDB cannot honour over plain Parquet
(deletion vectors, column mapping, ...) are refused by name. A directory whose table
files share one format and schema is one table (its parts); otherwise each file and
sub-directory is a table of its own. Every table is named for SQL after its file or
directory stem (`view_name`).

Cheap by design: Parquet row counts come from the files' metadata (a Delta table's from
its log), CSV and JSONL are counted by DuckDB once, and a resolution is cached by the
files' names, sizes and modification times (a run describes its context, then stages
it). ``duckdb`` and ``deltalake`` are imported only where a table is resolved.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from urllib.parse import unquote

from rlm_engine.errors import ConfigurationError, MissingExtraError

TABLE_FORMATS = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".jsonl": "json",
    ".ndjson": "json",
}
DELTA_LOG = "_delta_log"
READABLE_DELTA_FEATURES = frozenset(
    {
        "timestampNtz",
        "v2Checkpoint",
        "vacuumProtocolCheck",
        "checkpointProtection",
        "variantType",
        "variantType-preview",
        "deletionVectors",  # refused only where a file has one (`_check_delta`)
    }
)
"""Reader features whose tables read the same as their Parquet files."""
FEATURE_NAMES = {
    "deletionVectors": "deletion vectors",
    "columnMapping": "column mapping",
    "typeWidening": "type widening",
    "typeWidening-preview": "type widening",
}
_CACHE_SIZE = 16
_LOG_VERSION = re.compile(r"^(\d{20})\.")


class TableContextError(ConfigurationError):
    """A table context cannot be read as given; the message names the path."""


@dataclass(frozen=True, slots=True)
class TablePart:
    """Files read together, with the columns every row of them holds as a constant
    (a Delta table's partition values; a ``key=value`` folder of a directory)."""

    files: tuple[Path, ...]
    constants: tuple[tuple[str, str | None], ...] = ()


@dataclass(frozen=True, slots=True)
class TableSource:
    """One resolved table: what the sandbox registers as the view ``name``."""

    name: str
    format: str
    root: Path
    """Where ``parts`` lie; staging keeps their paths relative to it."""
    parts: tuple[TablePart, ...]
    columns: tuple[tuple[str, str], ...]
    rows: int
    source: str
    """The path the user gave, or the file or folder the table came from."""
    version: int | None = None
    """A Delta table's version the files belong to."""

    @property
    def files(self) -> tuple[Path, ...]:
        return tuple(file for part in self.parts for file in part.files)


def table_format(path: Path) -> str | None:
    """``parquet``, ``csv`` or ``json`` (newline-delimited) by the file's suffix."""
    return TABLE_FORMATS.get(path.suffix.lower())


def is_delta_table(path: Path) -> bool:
    return path.is_dir() and (path / DELTA_LOG).is_dir()


def _ignored(name: str) -> bool:
    # Hidden files and the markers writers leave (_SUCCESS, _committed_*, .crc files).
    return name.startswith((".", "_"))


def _walk(root: Path) -> Iterator[tuple[Path, list[str], list[str]]]:
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not _ignored(d))
        yield Path(folder), dirs, sorted(names)


def is_table_path(path: Path) -> bool:
    """Whether ``path`` is read as tables (stdlib only; lists a directory, reads no file):
    a Delta table, a table file, or a directory holding a Parquet file or a Delta table,
    or only CSV/JSONL files."""
    if path.is_file():
        return table_format(path) is not None
    if not path.is_dir():
        return False
    if is_delta_table(path):
        return True
    formats: set[str | None] = set()
    for folder, dirs, names in _walk(path):
        if any(is_delta_table(folder / d) for d in dirs):
            return True
        for name in names:
            if not _ignored(name) and (folder / name).is_file():
                formats.add(table_format(Path(name)))
    return "parquet" in formats or (bool(formats) and None not in formats)


def view_name(stem: str) -> str:
    """A table's SQL name: the stem lower-cased, every other character than a letter or
    digit made ``_``; ``t_`` in front of one that would start with a digit."""
    name = "".join(c if c.isascii() and c.isalnum() else "_" for c in stem.lower())
    if not name or name[0].isdigit():
        name = "t_" + name
    return name


def _pyarrow() -> Any:
    """`pyarrow` (a `deltalake` dependency; it ships no type stubs)."""
    return importlib.import_module("pyarrow")


def _duckdb() -> Any:
    try:
        import duckdb
    except ImportError:
        raise MissingExtraError(
            "a table context (Parquet, CSV, JSONL)", "tables", "duckdb"
        ) from None
    return duckdb


def _spec_of(fmt: str, parts: Sequence[TablePart], columns: Sequence[tuple[str, str]]) -> Any:
    return {
        "format": fmt,
        "columns": [list(c) for c in columns] or None,
        "parts": [
            {"files": [str(f) for f in part.files], "constants": [list(c) for c in part.constants]}
            for part in parts
        ],
    }


class _Describer:
    """One host DuckDB connection that describes tables by the sandbox's own view SQL."""

    def __init__(self) -> None:
        self._connection = _duckdb().connect(":memory:", config={"threads": 2})

    def close(self) -> None:
        self._connection.close()

    def columns(self, table: dict[str, Any]) -> tuple[tuple[str, str], ...]:
        from rlm_engine.sandbox.worker_table import table_sql

        rows = self._connection.execute(f"DESCRIBE {table_sql(table)}").fetchall()
        return tuple((str(row[0]), str(row[1])) for row in rows)

    def count(self, table: dict[str, Any]) -> int:
        from rlm_engine.sandbox.worker_table import table_sql

        row = self._connection.execute(f"SELECT count(*) FROM ({table_sql(table)})").fetchone()
        return int(row[0]) if row else 0

    def arrow_columns(self, schema: Any) -> dict[str, str]:
        """DuckDB's types for an Arrow schema (a Delta table's)."""
        relation = self._connection.from_arrow(schema.empty_table())
        return {str(n): str(t) for n, t in zip(relation.columns, relation.types, strict=True)}


def _unreadable(path: Path, fmt: str, exc: Exception) -> TableContextError:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return TableContextError(
        f"context file {str(path)!r} is not a readable {fmt} table: {first[:300]}",
        hint="fix or remove the file, or rename it without a .parquet/.csv/.jsonl suffix "
        "to read it as text",
    )


def _file_columns(describer: _Describer, path: Path, fmt: str) -> tuple[tuple[str, str], ...]:
    try:
        return describer.columns(_spec_of(fmt, [TablePart((path,))], []))
    except Exception as exc:  # DuckDB's errors have no common base worth naming
        raise _unreadable(path, fmt, exc) from None


def _hive_constants(relative: Path) -> tuple[tuple[str, str | None], ...]:
    """``key=value`` folders on the way to a file (a Hive-style partitioned layout)."""
    found: list[tuple[str, str | None]] = []
    for part in relative.parts[:-1]:
        key, sep, value = part.partition("=")
        if sep and key:
            found.append((key, None if value == "__HIVE_DEFAULT_PARTITION__" else unquote(value)))
    return tuple(found)


def _plain_table(
    describer: _Describer,
    name: str,
    root: Path,
    files: Sequence[Path],
    fmt: str,
    columns: tuple[tuple[str, str], ...],
    source: str,
) -> TableSource:
    """Files of one schema as one table; ``key=value`` folders become VARCHAR columns."""
    groups: dict[tuple[tuple[str, str | None], ...], list[Path]] = {}
    for file in files:
        groups.setdefault(_hive_constants(file.relative_to(root)), []).append(file)
    keys = [key for constants in groups for key, _ in constants]
    extra = [(k, "VARCHAR") for k in dict.fromkeys(keys) if k not in dict(columns)]
    parts = tuple(TablePart(tuple(fs), constants) for constants, fs in groups.items())
    spec = _spec_of(fmt, parts, (*columns, *extra))
    try:
        shown = describer.columns(spec) if extra else columns
        rows = describer.count(spec)
    except Exception as exc:
        raise _unreadable(root, fmt, exc) from None
    return TableSource(name, fmt, root, parts, shown, rows, source)


def _delta_error(path: Path, what: str, hint: str) -> TableContextError:
    return TableContextError(f"Delta table {str(path)!r} {what}", hint=hint)


_DELTA_HINT = (
    "rewrite the table without the feature (for deletion vectors, purge them: "
    "REORG TABLE ... APPLY (PURGE)), or export the table to Parquet and give that directory"
)


def _open_delta(path: Path) -> Any:
    try:
        from deltalake import DeltaTable
    except ImportError:
        raise MissingExtraError("a Delta table context", "delta", "deltalake") from None
    try:
        return DeltaTable(str(path))
    except Exception as exc:  # deltalake's errors: unreadable log, unsupported feature
        raise _delta_error(
            path, f"cannot be opened: {str(exc).strip()[:300]}", _DELTA_HINT
        ) from None


def _check_delta(path: Path, table: Any) -> None:
    """Refuse, by name, a feature that reading the Parquet files alone would get wrong."""
    pa = _pyarrow()
    protocol = table.protocol()
    features = set(protocol.reader_features or [])
    mode = str(table.metadata().configuration.get("delta.columnMapping.mode") or "none")
    if mode != "none" or "columnMapping" in features:
        raise _delta_error(
            path,
            f"uses column mapping (delta.columnMapping.mode = {mode}): its Parquet files "
            "hold physical column names that only the Delta log maps to the real ones",
            _DELTA_HINT,
        )
    if "deletionVectors" in features and pa.table(table.deletion_vectors()).num_rows:
        raise _delta_error(
            path,
            "has deletion vectors: rows deleted in the log are still in its Parquet files",
            _DELTA_HINT,
        )
    unknown = sorted(features - READABLE_DELTA_FEATURES)
    if unknown:
        named = ", ".join(f"{FEATURE_NAMES.get(f, f)} ({f})" for f in unknown)
        raise _delta_error(path, f"needs the reader feature {named}", _DELTA_HINT)


def _delta_table(describer: _Describer, path: Path, name: str) -> TableSource:
    pa = _pyarrow()
    table = _open_delta(path)
    _check_delta(path, table)
    version = int(table.version())
    schema = pa.schema(table.schema().to_arrow())
    types = describer.arrow_columns(schema)
    partitions = [str(c) for c in table.metadata().partition_columns]
    actions = pa.table(table.get_add_actions(flatten=True)).to_pylist()
    groups: dict[tuple[tuple[str, str | None], ...], list[Path]] = {}
    counted = 0
    for action in actions:
        file = path / unquote(str(action["path"]))
        if not file.exists():
            file = path / str(action["path"])
        constants = tuple((c, _partition_value(action.get(f"partition.{c}"))) for c in partitions)
        groups.setdefault(constants, []).append(file)
        records = action.get("num_records")
        counted = counted + int(records) if records is not None and counted >= 0 else -1
    parts = tuple(TablePart(tuple(files), constants) for constants, files in groups.items())
    columns = tuple(types.items())
    spec = _spec_of("parquet", parts, columns)
    try:
        shown = describer.columns(spec)
        rows = counted if counted >= 0 else describer.count(spec)
    except Exception as exc:
        raise _delta_error(
            path, f"cannot be read as Parquet: {str(exc).strip()[:300]}", _DELTA_HINT
        ) from None
    return TableSource(name, "parquet", path, parts, shown, rows, str(path), version)


def _partition_value(value: object) -> str | None:
    return None if value is None else str(value)


def _directory(describer: _Describer, path: Path, user: str) -> list[TableSource]:
    delta_dirs: list[Path] = []
    files: list[Path] = []
    others: list[Path] = []
    for folder, dirs, names in _walk(path):
        for d in list(dirs):
            if is_delta_table(folder / d):
                delta_dirs.append(folder / d)
                dirs.remove(d)
        for name in names:
            file = folder / name
            if _ignored(name) or not file.is_file():
                continue
            (files if table_format(file) else others).append(file)
    if others:
        shown = ", ".join(str(p.relative_to(path)) for p in others[:5])
        more = f" and {len(others) - 5} more" if len(others) > 5 else ""
        raise TableContextError(
            f"context directory {user!r} mixes table files with other files: {shown}{more}",
            hint="give a directory of .parquet/.csv/.jsonl files (or a Delta table) only, "
            "or move the other files out",
        )
    if not files and not delta_dirs:
        raise TableContextError(
            f"context directory {user!r} holds no table files",
            hint="give a directory with .parquet, .csv or .jsonl files or a Delta table",
        )
    schemas = {
        f: (table_format(f) or "", _file_columns(describer, f, table_format(f) or ""))
        for f in files
    }
    if not delta_dirs and len(set(schemas.values())) == 1:
        fmt, columns = next(iter(schemas.values()))
        return [_plain_table(describer, view_name(path.name), path, files, fmt, columns, user)]
    tables = [_delta_table(describer, d, view_name(d.name)) for d in delta_dirs]
    for file in files:
        fmt, columns = schemas[file]
        name = view_name(file.stem)
        tables.append(_plain_table(describer, name, file.parent, [file], fmt, columns, str(file)))
    return tables


def _unique(tables: list[TableSource]) -> tuple[TableSource, ...]:
    """Names made unique in order: a second ``orders`` is ``orders_2``."""
    seen: set[str] = set()
    kept: list[TableSource] = []
    for table in tables:
        name, index = table.name, 1
        while name in seen:
            index += 1
            name = f"{table.name}_{index}"
        seen.add(name)
        kept.append(table if name == table.name else _renamed(table, name))
    return tuple(kept)


def _renamed(table: TableSource, name: str) -> TableSource:
    return TableSource(
        name,
        table.format,
        table.root,
        table.parts,
        table.columns,
        table.rows,
        table.source,
        table.version,
    )


def _resolve_one(describer: _Describer, path: Path) -> list[TableSource]:
    if is_delta_table(path):
        return [_delta_table(describer, path, view_name(path.name))]
    if path.is_dir():
        return _directory(describer, path, str(path))
    fmt = table_format(path)
    if fmt is None or not path.is_file():
        raise TableContextError(
            f"context path {str(path)!r} is not a table file",
            hint="give a .parquet, .csv or .jsonl file, a directory of them or a Delta table",
        )
    if path.stat().st_size == 0:
        raise TableContextError(
            f"context file {str(path)!r} is empty", hint="give a table file with content"
        )
    columns = _file_columns(describer, path, fmt)
    return [
        _plain_table(describer, view_name(path.stem), path.parent, [path], fmt, columns, str(path))
    ]


def _signature(paths: Sequence[Path]) -> tuple[Any, ...]:
    """The paths' files by name, size and modification time: equal means unchanged."""
    seen: list[Any] = []
    for path in paths:
        if path.is_file():
            stat = path.stat()
            seen.append((str(path), stat.st_size, stat.st_mtime_ns))
            continue
        for folder, _, names in os.walk(path):
            for name in sorted(names):
                with contextlib.suppress(FileNotFoundError):
                    stat = os.stat(os.path.join(folder, name))
                    seen.append((folder, name, stat.st_size, stat.st_mtime_ns))
    return tuple(seen)


_cache: OrderedDict[tuple[Any, ...], tuple[TableSource, ...]] = OrderedDict()
_cache_lock = threading.Lock()


def resolve_tables(paths: Sequence[Path]) -> tuple[TableSource, ...]:
    """The tables of the context at ``paths`` (each a table path), names made unique.
    Raises `TableContextError` (a `ConfigurationError` with a hint) for an unreadable
    file, an empty directory or one that mixes table files with others, and for a Delta
    feature DuckDB cannot read; `MissingExtraError` without ``duckdb``/``deltalake``."""
    resolved = [Path(p).absolute() for p in paths]
    # By the real path: the CLI checks the path as typed, the run then stages it resolved.
    key = (tuple(str(p.resolve()) for p in resolved), _signature(resolved))
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    describer = _Describer()
    try:
        tables = _unique([t for path in resolved for t in _resolve_one(describer, path)])
    finally:
        describer.close()
    with _cache_lock:
        _cache[key] = tables
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return tables


Place = Callable[[Path, Path], None]
"""Puts a file (first) at a path (second): a hard link or a copy."""


def table_spec(
    tables: Sequence[TableSource], target: Path | None = None, place: Place | None = None
) -> dict[str, Any]:
    """The worker's ``table`` spec. With ``target`` and ``place`` each file is staged
    under ``target`` first (its path below its table's root kept) and the spec names the
    staged copies; without, it names the files where they are (to describe them)."""
    specs: list[dict[str, Any]] = []
    total_files = total_bytes = 0
    for index, table in enumerate(tables):
        parts: list[TablePart] = []
        for part in table.parts:
            staged: list[Path] = []
            for file in part.files:
                total_files += 1
                total_bytes += file.stat().st_size
                if target is None or place is None:
                    staged.append(file)
                    continue
                destination = target / f"{index:03d}-{table.name}" / file.relative_to(table.root)
                place(file, destination)
                staged.append(destination)
            parts.append(TablePart(tuple(staged), part.constants))
        spec = _spec_of(table.format, parts, table.columns)
        spec.update(
            name=table.name,
            columns=[list(c) for c in table.columns],
            rows=table.rows,
            version=table.version,
            source=table.source,
        )
        specs.append(spec)
    return {
        "kind": "table",
        "lazy": True,
        "files": total_files,
        "bytes": total_bytes,
        "tables": specs,
    }


def delta_pin_files(path: Path) -> list[Path]:
    """What pinning keeps of a Delta table: its log up to the current version and that
    version's data files, so a copy rebuilt from the pin is the table at that version
    (files an earlier version removed, and later commits, are left out)."""
    table = _open_delta(path)
    version = int(table.version())
    log = path / DELTA_LOG
    kept: list[Path] = []
    for entry in sorted(log.iterdir()):
        match = _LOG_VERSION.match(entry.name)
        if entry.is_file() and match is not None and int(match.group(1)) <= version:
            kept.append(entry)
    pa = _pyarrow()
    for action in pa.table(table.get_add_actions(flatten=True)).column("path").to_pylist():
        file = path / unquote(str(action))
        kept.append(file if file.exists() else path / str(action))
    return sorted(set(kept))


def table_sources_of(value: object) -> tuple[TableSource, ...] | None:
    """The tables of a context value that is a table path, or a list of table files;
    None for any other value (read as text, JSON, a corpus, ...)."""
    if isinstance(value, os.PathLike):
        path = Path(cast(os.PathLike[str], value))
        return resolve_tables([path]) if is_table_path(path) else None
    if isinstance(value, list | tuple) and value:
        items = cast(Sequence[object], value)
        paths = [Path(cast(os.PathLike[str], i)) for i in items if isinstance(i, os.PathLike)]
        if len(paths) == len(items) and all(p.is_file() and table_format(p) for p in paths):
            return resolve_tables(paths)
    return None
