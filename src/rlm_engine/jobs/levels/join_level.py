"""Level 8: a join over three tables of different formats, a sub-call, a typed answer.

The context is a directory holding ``customers.csv``, ``orders.parquet`` and
``tickets.jsonl``: three tables of different shapes, so each is its own view. The answer
needs a join and an aggregate (SQL), what a free-text support ticket is about (a
sub-call), and comes back as ``SUBMIT`` fields that must fit a JSON schema.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rlm_engine.bench.words import FIRST_NAMES, LAST_NAMES, essay_sentence, pick
from rlm_engine.jobs.levels.base import OracleKnowledge, Prepared, tag_for
from rlm_engine.jobs.levels.checks import check_fields
from rlm_engine.jobs.levels.table_levels import PRODUCTS, write_csv, write_parquet
from rlm_engine.sim.oracle_protocol import FACT_PROMPT
from rlm_engine.sim.oracle_registry import OracleFact

TICKET_QUESTION = "Which product is this support ticket about? Reply with the product name only."
COUNTRIES = ("DE", "FR", "SE", "NL", "IT")

OUTPUT_SCHEMA: Mapping[str, Any] = {
    "type": "object",
    "properties": {
        "customer_id": {"type": "string", "pattern": "^C[0-9]{4}$"},
        "name": {"type": "string"},
        "total_cents": {"type": "integer"},
        "ticket_product": {"type": "string", "enum": list(PRODUCTS)},
    },
    "required": ["customer_id", "name", "total_cents", "ticket_product"],
    "additionalProperties": False,
}

SOLUTION = f"""\
for name, table in context.items():
    print(name, table.columns, table.rows)
top = sql(
    "SELECT c.customer_id, c.name, SUM(o.amount_cents) AS total "
    "FROM customers c JOIN orders o ON o.customer_id = c.customer_id "
    "WHERE o.order_date >= '2026-01-01' "
    "GROUP BY c.customer_id, c.name ORDER BY total DESC LIMIT 1"
)[0]
print(top)
ticket = sql(
    "SELECT ticket_id, body FROM tickets WHERE customer_id = '" + top["customer_id"] + "' "
    "ORDER BY opened DESC LIMIT 1"
)[0]
FACT_PROMPT = {FACT_PROMPT!r}
product = llm_query(FACT_PROMPT.format(question={TICKET_QUESTION!r}, text=ticket["body"]))
print(ticket["ticket_id"], product)
SUBMIT(
    customer_id=top["customer_id"],
    name=top["name"],
    total_cents=int(top["total"]),
    ticket_product=product.strip(),
)
"""

_TICKETS = (
    "My {product} stopped working after the update, can you send a replacement?",
    "I ordered the {product} twice by mistake; please cancel one of them.",
    "The {product} arrived scratched. {filler}",
    "How do I reset the {product}? The manual does not say. {filler}",
)


def _customers(rng: random.Random) -> list[dict[str, Any]]:
    names: set[str] = set()
    rows: list[dict[str, Any]] = []
    while len(rows) < 120:
        name = f"{pick(rng, FIRST_NAMES)} {pick(rng, LAST_NAMES)}"
        if name in names:
            continue
        names.add(name)
        rows.append(
            {
                "customer_id": f"C{1000 + len(rows)}",
                "name": name,
                "country": COUNTRIES[rng.randrange(len(COUNTRIES))],
            }
        )
    return rows


def _orders(rng: random.Random, customers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for i in range(3000):
        year = 2025 + rng.randrange(2)
        rows.append(
            {
                "order_id": f"O{200000 + i}",
                "customer_id": customers[rng.randrange(len(customers))]["customer_id"],
                "amount_cents": rng.randrange(500, 90_000),
                "order_date": f"{year}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}",
            }
        )
    return rows


def _tickets(rng: random.Random, customers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()  # distinct opening times: "most recent" has one answer
    for i in range(400):
        product = PRODUCTS[rng.randrange(len(PRODUCTS))]
        form = _TICKETS[rng.randrange(len(_TICKETS))]
        body = f"[ticket {i}] " + form.format(product=product, filler=essay_sentence(rng))
        opened = ""
        while not opened or opened in seen:
            opened = (
                f"2026-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}"
                f"T{rng.randrange(24):02d}:{rng.randrange(60):02d}:00"
            )
        seen.add(opened)
        rows.append(
            {
                "ticket_id": f"T{7000 + i}",
                "customer_id": customers[rng.randrange(len(customers))]["customer_id"],
                "opened": opened,
                "body": body,
                "product": product,
            }
        )
    return rows


def _totals(orders: list[dict[str, Any]]) -> dict[str, int]:
    totals: dict[str, int] = defaultdict(int)
    for row in orders:
        if row["order_date"] >= "2026-01-01":
            totals[row["customer_id"]] += row["amount_cents"]
    return totals


def join_typed(directory: Path, seed: int) -> Prepared:
    """Level 8: the top customer of 2026 by spend, and what their latest ticket is about."""
    rng = random.Random(f"level8:{seed}")
    customers = _customers(rng)
    orders = _orders(rng, customers)
    totals = _totals(orders)
    ranked = sorted(totals, key=lambda c: totals[c], reverse=True)
    # One clear winner: lift the leader's biggest 2026 order above any tie.
    leader = ranked[0]
    gap = totals[leader] - totals[ranked[1]]
    if gap < 1000:
        for row in orders:
            if row["customer_id"] == leader and row["order_date"] >= "2026-01-01":
                row["amount_cents"] += 1000 - gap
                break
        totals = _totals(orders)
    tickets = _tickets(rng, customers)
    own = sorted((t for t in tickets if t["customer_id"] == leader), key=lambda t: t["opened"])
    if not own:  # the leader must have a ticket to read
        tickets[0]["customer_id"] = leader
        own = [tickets[0]]
    latest = own[-1]
    shop = directory / "level8" / "shop"
    write_csv(shop / "customers.csv", customers)
    write_parquet(shop / "orders.parquet", orders)
    shop.joinpath("tickets.jsonl").write_text(
        "".join(json.dumps({k: v for k, v in t.items() if k != "product"}) + "\n" for t in tickets),
        encoding="utf-8",
    )
    name = next(c["name"] for c in customers if c["customer_id"] == leader)
    expected: dict[str, Any] = {
        "customer_id": leader,
        "name": name,
        "total_cents": totals[leader],
        "ticket_product": latest["product"],
    }
    question = (
        "The context is a shop's tables: customers, orders (amounts in cents) and support "
        "tickets. Which customer spent the most on orders dated in 2026 or later, how much "
        "in cents, and which product is that customer's most recently opened ticket about? "
        "SUBMIT customer_id, name, total_cents and ticket_product."
    )
    facts = tuple(OracleFact(TICKET_QUESTION, t["body"], t["product"]) for t in tickets)
    tag = tag_for(8, seed)
    return Prepared(
        question=question,
        contexts=(shop,),
        expected=json.dumps(expected, ensure_ascii=False),
        check=lambda _answer, fields: check_fields(fields, OUTPUT_SCHEMA, expected),
        oracle=(
            OracleKnowledge(
                f"level8-s{seed}", tag, question, SOLUTION, json.dumps(expected), facts=facts
            ),
        ),
        output_schema=OUTPUT_SCHEMA,
        oracle_tag=tag,
    )
