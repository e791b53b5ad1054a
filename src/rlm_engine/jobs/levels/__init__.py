"""The ladder of built-in test levels, from one cell of arithmetic to a typed join."""

from __future__ import annotations

from rlm_engine.errors import ConfigurationError
from rlm_engine.jobs.levels.base import Level
from rlm_engine.jobs.levels.delta_level import delta_table
from rlm_engine.jobs.levels.join_level import join_typed
from rlm_engine.jobs.levels.recursive import recursive
from rlm_engine.jobs.levels.table_levels import csv_sql, parquet_fanout
from rlm_engine.jobs.levels.text_levels import arithmetic, fanout, search

LEVELS: tuple[Level, ...] = (
    Level(1, "arithmetic", "one REPL cell and FINAL over a small text context", arithmetic),
    Level(2, "search", "searching a 4,000-line log in code for one fact", search),
    Level(3, "fan-out", "llm_query_batched: one sub-call per report, summed in code", fanout),
    Level(4, "recursion", "rlm_query: a child RLM with its own REPL per log (depth 2)", recursive),
    Level(5, "csv-sql", "a CSV table context and one sql() aggregate", csv_sql),
    Level(
        6, "delta-table", "a Delta table read at its latest version, sql() GROUP BY", delta_table
    ),
    Level(
        7,
        "sql-then-fan-out",
        "a Parquet directory as one table; sql() filters, llm_query_batched classifies",
        parquet_fanout,
    ),
    Level(
        8,
        "typed-join",
        "three tables (CSV, Parquet, JSONL) joined in sql(), a sub-call, SUBMIT checked "
        "against a JSON schema",
        join_typed,
    ),
)


class UnknownLevelError(ConfigurationError):
    """A level number or range that is not on the ladder."""


def _known() -> str:
    return ", ".join(f"{level.number} {level.name}" for level in LEVELS)


def level(number: int) -> Level:
    """The level numbered ``number``; `UnknownLevelError` lists the ladder otherwise."""
    for candidate in LEVELS:
        if candidate.number == number:
            return candidate
    raise UnknownLevelError(
        f"there is no test level {number}",
        hint=f"the levels are: {_known()} (see rlm-test --list)",
    )


def select(spec: str) -> tuple[Level, ...]:
    """The levels ``spec`` names: ``"3"``, ``"1-4"``, ``"2,5,7"`` or a level's name."""
    chosen: list[Level] = []
    for part in (p.strip() for p in spec.split(",")):
        named = [lv for lv in LEVELS if lv.name == part]
        if named:
            chosen += named
            continue
        low, dash, high = part.partition("-")
        try:
            first = int(low)
            last = int(high) if dash else first
        except ValueError:
            raise UnknownLevelError(
                f"{part!r} is not a level number, range (1-4) or name",
                hint=f"the levels are: {_known()}",
            ) from None
        if last < first:
            raise UnknownLevelError(
                f"level range {part!r} runs backwards",
                hint=f"write it low-high, e.g. {last}-{first}",
            )
        chosen += [level(n) for n in range(first, last + 1)]
    unique: dict[int, Level] = {lv.number: lv for lv in chosen}
    return tuple(unique[n] for n in sorted(unique))
