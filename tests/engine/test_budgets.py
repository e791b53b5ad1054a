import pytest

from rlm_engine.engine.budgets import Budget, Limits
from rlm_engine.errors import BudgetExceeded
from rlm_engine.types import Completion, Usage


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _completion(tokens: int, cost: float | None, model: str = "m/a") -> Completion:
    return Completion(text="x", model=model, usage=Usage(tokens, tokens, 0, 1), cost_usd=cost)


def test_sub_call_budget_counts_and_refuses() -> None:
    budget = Budget(Limits(max_sub_calls=2))
    budget.take_sub_call()
    budget.take_sub_call()
    with pytest.raises(BudgetExceeded) as info:
        budget.take_sub_call()
    assert info.value.budget == "sub_calls"


def test_token_and_cost_budgets() -> None:
    budget = Budget(Limits(max_tokens=100, max_cost_usd=0.5))
    budget.record(_completion(20, 0.1))
    assert budget.exceeded() is None
    budget.record(_completion(40, 0.1))
    spent = budget.exceeded()
    assert spent is not None and spent.budget == "tokens"
    budget = Budget(Limits(max_cost_usd=0.5))
    budget.record(_completion(1, 0.6))
    spent = budget.exceeded()
    assert spent is not None and spent.budget == "cost"


def test_time_budget_uses_the_injected_clock() -> None:
    clock = FakeClock()
    budget = Budget(Limits(max_seconds=10), clock=clock)
    assert budget.exceeded() is None
    clock.now += 10.5
    spent = budget.exceeded()
    assert spent is not None and spent.budget == "time"
    assert budget.remaining_s() == pytest.approx(-0.5)


def test_unknown_price_makes_total_cost_unknown_not_zero() -> None:
    budget = Budget(Limits())
    budget.record(_completion(5, 0.25, "m/priced"))
    assert budget.cost_usd == pytest.approx(0.25)
    budget.record(_completion(5, None, "m/unpriced"))
    assert budget.cost_usd is None
    assert budget.cost_known_usd == pytest.approx(0.25)
    assert budget.unpriced_calls == 1
    assert set(budget.usage_by_model) == {"m/priced", "m/unpriced"}
    assert budget.usage.requests == 2


def test_describe_mentions_limits() -> None:
    budget = Budget(Limits(max_sub_calls=10, max_tokens=1000))
    budget.take_sub_call()
    line = budget.describe()
    assert "sub-calls used 1/10" in line and "tokens used 0/1000" in line
