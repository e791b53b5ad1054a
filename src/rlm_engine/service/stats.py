"""Usage of a tenant's runs: tokens and cost by model, by day and by session.

Built from the store's per-(day, model, session) rows of the model calls. A cost is
reported only when every call it sums had a known price: a total that silently left out
unpriced calls would look smaller than what was spent, so it is None instead, and
`unpriced_calls` says how many calls lacked a price.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from rlm_engine.service.principal import Principal
from rlm_engine.store.protocol import Store
from rlm_engine.store.records import UsageRow


@dataclass(frozen=True, slots=True)
class UsageTotals:
    """What a group of model calls consumed."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float | None = 0.0
    """Summed known costs; None when any call of the group had no known price."""
    unpriced_calls: int = 0

    def plus(self, row: UsageRow) -> UsageTotals:
        unpriced = self.unpriced_calls + row.unpriced_calls
        cost = None if unpriced or self.cost_usd is None else self.cost_usd + row.cost_usd
        return UsageTotals(
            calls=self.calls + row.calls,
            input_tokens=self.input_tokens + row.input_tokens,
            output_tokens=self.output_tokens + row.output_tokens,
            cached_tokens=self.cached_tokens + row.cached_tokens,
            cost_usd=cost,
            unpriced_calls=unpriced,
        )


def _empty_groups() -> dict[str, UsageTotals]:
    return {}


@dataclass(frozen=True, slots=True)
class UsageStats:
    """A tenant's usage, in total and grouped. Keys are sorted; `by_day` keys are UTC days
    ("YYYY-MM-DD"); `by_session` holds only runs of a session (runs outside any session
    count in `totals`, `by_model` and `by_day`)."""

    totals: UsageTotals = UsageTotals()
    by_model: dict[str, UsageTotals] = field(default_factory=_empty_groups)
    by_day: dict[str, UsageTotals] = field(default_factory=_empty_groups)
    by_session: dict[str, UsageTotals] = field(default_factory=_empty_groups)


def _add(groups: dict[str, UsageTotals], key: str, row: UsageRow) -> None:
    groups[key] = groups.get(key, UsageTotals()).plus(row)


def summarize(rows: Iterable[UsageRow]) -> UsageStats:
    """The stats of ``rows`` (the store's usage rows of one tenant)."""
    totals = UsageTotals()
    by_model: dict[str, UsageTotals] = {}
    by_day: dict[str, UsageTotals] = {}
    by_session: dict[str, UsageTotals] = {}
    for row in rows:
        totals = totals.plus(row)
        _add(by_model, row.model, row)
        _add(by_day, row.day, row)
        if row.session is not None:
            _add(by_session, row.session, row)
    return UsageStats(
        totals=totals,
        by_model=dict(sorted(by_model.items())),
        by_day=dict(sorted(by_day.items())),
        by_session=dict(sorted(by_session.items())),
    )


def usage_stats(store: Store, who: Principal, *, since: float | None = None) -> UsageStats:
    """The usage of ``who``'s tenant, of calls started at or after ``since`` (epoch
    seconds; None: all)."""
    return summarize(store.usage_rows(tenant=who.tenant, since=since))
