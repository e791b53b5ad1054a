"""Level 4: a sub-problem per part of the context, each handed to a child RLM.

The context is a JSON object of warehouse logs. The root asks a child RLM (``rlm_query``)
to count one warehouse's returned shipments in that warehouse's log, then compares the
counts. Each child has its own REPL whose ``context`` is one log, so the oracle finds the
child's task by that log's fingerprint.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from rlm_engine.bench.solution_code import finish
from rlm_engine.jobs.levels.base import OracleKnowledge, Prepared
from rlm_engine.jobs.levels.checks import check_choice
from rlm_engine.jobs.levels.text_levels import write_text
from rlm_engine.sim.oracle_registry import context_fingerprint, text_digest

WAREHOUSES = ("north", "south", "east", "west")
CHILD_QUESTION = (
    "The context is one warehouse's shipment log. How many shipments in it have status "
    "RETURNED? Reply with the number only."
)
_STATUSES = ("DELIVERED", "IN_TRANSIT", "DELAYED")

CHILD_SOLUTION = (
    "lines = context.splitlines()\n"
    "returned = sum(1 for line in lines if line.rstrip().endswith('status=RETURNED'))\n"
    "print(len(lines), 'lines,', returned, 'returned')\n" + finish("returned")
)

ROOT_SOLUTION = f"""\
import re
counts = {{}}
for name in sorted(context["warehouses"]):
    reply = rlm_query({CHILD_QUESTION!r}, context=context["warehouses"][name])
    found = re.search(r"\\d+", reply)
    counts[name] = int(found.group()) if found else -1
print(counts)
""" + finish("max(counts, key=lambda name: counts[name])")


def _log(rng: random.Random, name: str, returned: int) -> str:
    lines: list[str] = []
    rows = rng.randrange(300, 500)
    marked = set(rng.sample(range(rows), returned))
    for i in range(rows):
        status = "RETURNED" if i in marked else _STATUSES[rng.randrange(len(_STATUSES))]
        day = 1 + i * 28 // rows
        lines.append(f"SHP-{name[0].upper()}{i:05d} 2026-02-{day:02d} status={status}")
    return "\n".join(lines) + "\n"


def recursive(directory: Path, seed: int) -> Prepared:
    """Level 4: which warehouse returned the most shipments, one child RLM per log."""
    rng = random.Random(f"level4:{seed}")
    counts = rng.sample(range(5, 60), len(WAREHOUSES))  # distinct: one clear winner
    logs = {name: _log(rng, name, n) for name, n in zip(WAREHOUSES, counts, strict=True)}
    value = {"warehouses": logs}
    path = write_text(directory / "level4", "warehouses.json", json.dumps(value, indent=1))
    expected = max(logs, key=lambda name: counts[WAREHOUSES.index(name)])
    question = (
        "The context maps each warehouse to its shipment log (context['warehouses']). "
        "Which warehouse has the most shipments with status RETURNED? Answer with its name."
    )
    children = tuple(
        OracleKnowledge(
            f"level4-s{seed}-{name}",
            context_fingerprint(log),
            CHILD_QUESTION,
            CHILD_SOLUTION,
            str(counts[WAREHOUSES.index(name)]),
        )
        for name, log in logs.items()
    )
    # The REPL fingerprints a JSON context by its canonical dump, as `context_fingerprint`
    # does a mapping of strings (this one nests them one level down).
    canonical = json.dumps(value, ensure_ascii=False, sort_keys=True)
    root = OracleKnowledge(
        f"level4-s{seed}", text_digest(canonical), question, ROOT_SOLUTION, expected
    )
    return Prepared(
        question=question,
        contexts=(path,),
        expected=expected,
        check=lambda answer, _fields: check_choice(answer, expected, WAREHOUSES),
        oracle=(root, *children),
        min_depth=2,
    )
