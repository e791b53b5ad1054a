"""Levels 5 and 7: table contexts queried with ``sql()``.

Level 5 is one CSV file and one aggregate query. Level 7 is a directory of Parquet parts
(one table): SQL narrows it to the rows that matter and only those go to sub-calls, which
is the point of giving a model tables rather than text.

In the REPL a table context is a table object, which the oracle's inspection cell cannot
fingerprint, so these levels carry an oracle tag in the question on the simulator.
"""

from __future__ import annotations

import csv
import importlib
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rlm_engine.bench.solution_code import CLASSIFY_CODE, PACK_CODE, finish
from rlm_engine.bench.words import FIRST_NAMES, essay_sentence, pick
from rlm_engine.errors import MissingExtraError
from rlm_engine.jobs.levels.base import OracleKnowledge, Prepared, tag_for
from rlm_engine.jobs.levels.checks import check_number

REGIONS = ("north", "south", "east", "west")
STATUSES = ("shipped", "pending", "cancelled", "returned")


def write_csv(path: Path, rows: Sequence[Mapping[str, Any]]) -> Path:
    """``rows`` as a CSV file with a header line (the directory made if missing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def optional(module: str, extra: str) -> Any:
    """``module``, imported now (it is heavy), or `MissingExtraError` naming ``extra``.
    Typed as Any: pyarrow and deltalake's writers ship no complete stubs."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtraError("the table test levels' data", extra, module) from None


def arrow_table(rows: Sequence[Mapping[str, Any]]) -> Any:
    """``rows`` as a pyarrow Table."""
    return optional("pyarrow", "tables").Table.from_pylist([dict(r) for r in rows])


def write_parquet(path: Path, rows: Sequence[Mapping[str, Any]]) -> Path:
    """``rows`` as one Parquet file (the directory made if missing)."""
    parquet = optional("pyarrow.parquet", "tables")
    path.parent.mkdir(parents=True, exist_ok=True)
    parquet.write_table(arrow_table(rows), path)
    return path


def csv_sql(directory: Path, seed: int) -> Prepared:
    """Level 5: one aggregate over a CSV table."""
    rng = random.Random(f"level5:{seed}")
    region = REGIONS[rng.randrange(len(REGIONS))]
    rows: list[dict[str, Any]] = []
    for i in range(2500):
        rows.append(
            {
                "order_id": f"O{100000 + i}",
                "customer_id": f"C{rng.randrange(1000, 1400)}",
                "region": REGIONS[rng.randrange(len(REGIONS))],
                "status": STATUSES[rng.randrange(len(STATUSES))],
                "amount_cents": rng.randrange(199, 250_000),
                "order_date": f"2026-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}",
            }
        )
    path = write_csv(directory / "level5" / "orders.csv", rows)
    expected = sum(
        r["amount_cents"] for r in rows if r["region"] == region and r["status"] == "shipped"
    )
    question = (
        "The context is a table of orders (amounts in cents). What is the total "
        f"amount_cents of the orders in region '{region}' whose status is 'shipped'?"
    )
    solution = (
        "print(context.columns, context.rows)\n"
        'rows = sql("SELECT SUM(amount_cents) AS total FROM orders "\n'
        f"           \"WHERE region = '{region}' AND status = 'shipped'\")\n"
        "print(rows)\n" + finish("int(rows[0]['total'])")
    )
    tag = tag_for(5, seed)
    return Prepared(
        question=question,
        contexts=(path,),
        expected=str(expected),
        check=lambda answer, _fields: check_number(answer, expected),
        oracle=(OracleKnowledge(f"level5-s{seed}", tag, question, solution, str(expected)),),
        oracle_tag=tag,
    )


PRODUCTS = ("Vela kettle", "Orso toaster", "Lumo lamp", "Brisa fan")
ISSUES = {
    "lid": (
        "The lid will not stay shut and pops open when the water boils.",
        "Its lid hinge snapped within a week, so the lid hangs loose.",
        "Steam leaks around the lid and the lid rattles the whole time.",
    ),
    "handle": (
        "The handle gets far too hot to hold after a minute.",
        "The handle came loose from the body after a few uses.",
    ),
    "heating": (
        "It takes ages to heat anything and sometimes never warms at all.",
        "The heating element died after two days.",
    ),
    "other": (
        "The colour is not what the pictures showed.",
        "Delivery took three weeks and the box was crushed.",
    ),
}
CATEGORIES = tuple(ISSUES)


def _review(rng: random.Random, issue: str, index: int) -> str:
    # The reviewer's name and an essay sentence keep every body unique.
    complaint = ISSUES[issue][rng.randrange(len(ISSUES[issue]))]
    return f"{pick(rng, FIRST_NAMES)} (review {index}): {complaint} {essay_sentence(rng)}"


def parquet_fanout(directory: Path, seed: int) -> Prepared:
    """Level 7: filter a Parquet table with SQL, classify the rows left by sub-calls."""
    rng = random.Random(f"level7:{seed}")
    product = PRODUCTS[rng.randrange(len(PRODUCTS))]
    rows: list[dict[str, Any]] = []
    labels: dict[str, str] = {}
    for i in range(1200):
        stars = rng.randrange(1, 6)
        issue = CATEGORIES[rng.randrange(len(CATEGORIES))]
        body = _review(rng, issue, i)
        labels[body] = issue
        rows.append(
            {
                "review_id": f"R{50000 + i}",
                "product": PRODUCTS[rng.randrange(len(PRODUCTS))],
                "stars": stars,
                "body": body,
            }
        )
    table = directory / "level7" / "reviews"
    half = len(rows) // 2
    write_parquet(table / "part-0.parquet", rows[:half])
    write_parquet(table / "part-1.parquet", rows[half:])
    expected = sum(
        1
        for r in rows
        if r["product"] == product and r["stars"] <= 2 and labels[r["body"]] == "lid"
    )
    question = (
        f"The context is a table of product reviews. Among the reviews of '{product}' with "
        "at most 2 stars, how many complain about the lid? Read the review bodies: each "
        f"complains about one of: {', '.join(CATEGORIES)}."
    )
    solution = (
        PACK_CODE
        + CLASSIFY_CODE
        + 'rows = sql("SELECT review_id, body FROM reviews "\n'
        + f"           \"WHERE product = '{product}' AND stars <= 2 ORDER BY review_id\")\n"
        + "print(len(rows), 'low-rated reviews')\n"
        + f"found = classify([r['body'] for r in rows], {list(CATEGORIES)!r}, 20_000)\n"
        + finish("sum(1 for label in found if label == 'lid')")
    )
    tag = tag_for(7, seed)
    return Prepared(
        question=question,
        contexts=(table,),
        expected=str(expected),
        check=lambda answer, _fields: check_number(answer, expected),
        oracle=(
            OracleKnowledge(
                f"level7-s{seed}", tag, question, solution, str(expected), labels=labels
            ),
        ),
        oracle_tag=tag,
    )
