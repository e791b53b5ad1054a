"""Level 6: a Delta table written in several commits, grouped with ``sql()``.

The table gets its rows in two appends, so the answer is right only when the context is
read at the table's latest version (every commit), not from one data file.
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path
from typing import Any, Literal

from rlm_engine.bench.solution_code import finish
from rlm_engine.jobs.levels.base import OracleKnowledge, Prepared, tag_for
from rlm_engine.jobs.levels.checks import check_id
from rlm_engine.jobs.levels.table_levels import arrow_table, optional

LEVELS_OF_EVENT = ("info", "warn", "error")


def _commit(table: Path, rows: list[dict[str, Any]], mode: Literal["overwrite", "append"]) -> None:
    deltalake = optional("deltalake", "delta")
    deltalake.write_deltalake(str(table), arrow_table(rows), mode=mode)


def delta_table(directory: Path, seed: int) -> Prepared:
    """Level 6: the device with the most error events across every commit."""
    rng = random.Random(f"level6:{seed}")
    devices = [f"dev-{n:04d}" for n in rng.sample(range(10_000), 40)]
    rows: list[dict[str, Any]] = []
    for i in range(3000):
        rows.append(
            {
                "event_id": i,
                "device_id": devices[rng.randrange(len(devices))],
                "level": LEVELS_OF_EVENT[rng.randrange(len(LEVELS_OF_EVENT))],
                "message": f"reading {rng.randrange(1000)}",
            }
        )
    errors = Counter(r["device_id"] for r in rows if r["level"] == "error")
    ((first, top),) = errors.most_common(1)
    # The second commit makes another device the leader, so a reader of the first data
    # file alone gets it wrong.
    runner = next(d for d in devices if d != first)
    extra = top - errors[runner] + 3
    late: list[dict[str, Any]] = [
        {"event_id": 3000 + i, "device_id": runner, "level": "error", "message": "overheat"}
        for i in range(extra)
    ]
    table = directory / "level6" / "device_events"
    _commit(table, rows, "overwrite")  # a data directory used before starts afresh
    _commit(table, late, "append")
    expected = runner
    question = (
        "The context is a table of device events. Which device_id has the most events "
        "whose level is 'error'? Answer with the device id."
    )
    solution = (
        "print(context.columns, context.rows)\n"
        'rows = sql("SELECT device_id, COUNT(*) AS n FROM device_events "\n'
        "           \"WHERE level = 'error' GROUP BY device_id ORDER BY n DESC LIMIT 2\")\n"
        "print(rows)\n" + finish("rows[0]['device_id']")
    )
    tag = tag_for(6, seed)
    return Prepared(
        question=question,
        contexts=(table,),
        expected=expected,
        check=lambda answer, _fields: check_id(answer, expected, r"dev-\d{4}"),
        oracle=(OracleKnowledge(f"level6-s{seed}", tag, question, solution, expected),),
        oracle_tag=tag,
    )
