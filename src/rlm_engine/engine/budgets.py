"""Run budgets shared by the whole call tree (root, sub-calls, child RLMs)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from rlm_engine.errors import BudgetExceeded
from rlm_engine.types import Completion, Usage


@dataclass(frozen=True, slots=True)
class Limits:
    max_sub_calls: int | None = None
    max_tokens: int | None = None
    max_cost_usd: float | None = None
    max_seconds: float | None = None


@dataclass
class Budget:
    """Counts what the tree has spent and says when a limit is reached.

    Calls whose price is unknown are counted in ``unpriced_calls``; the cost limit can only
    see priced calls, which is why the total cost is reported as unknown when any exist.
    """

    limits: Limits
    clock: Callable[[], float] = time.monotonic
    started: float = field(default=0.0)
    sub_calls: int = 0
    usage: Usage = field(default_factory=Usage)
    usage_by_model: dict[str, Usage] = field(default_factory=dict[str, Usage])
    cost_known_usd: float = 0.0
    unpriced_calls: int = 0

    def __post_init__(self) -> None:
        if not self.started:
            self.started = self.clock()

    @property
    def elapsed_s(self) -> float:
        return self.clock() - self.started

    @property
    def cost_usd(self) -> float | None:
        return None if self.unpriced_calls else self.cost_known_usd

    def remaining_s(self) -> float | None:
        if self.limits.max_seconds is None:
            return None
        return self.limits.max_seconds - self.elapsed_s

    def record(self, completion: Completion) -> None:
        self.usage = self.usage + completion.usage
        prior = self.usage_by_model.get(completion.model, Usage())
        self.usage_by_model[completion.model] = prior + completion.usage
        if completion.cost_usd is None:
            self.unpriced_calls += 1
        else:
            self.cost_known_usd += completion.cost_usd

    def take_sub_call(self) -> None:
        """Reserve one sub-call, or raise if the sub-call budget is spent."""
        limit = self.limits.max_sub_calls
        if limit is not None and self.sub_calls >= limit:
            raise BudgetExceeded(
                "sub_calls", f"sub-call budget of {limit} spent; aggregate what you have"
            )
        self.sub_calls += 1

    def sub_calls_left(self) -> int | None:
        limit = self.limits.max_sub_calls
        return None if limit is None else max(limit - self.sub_calls, 0)

    def take_sub_calls(self, count: int) -> None:
        """Reserve a whole batch, or raise before any of it is sent.

        A batch cut off halfway would pay for calls whose answers the cell never gets
        together, so one larger than what is left is refused whole."""
        left = self.sub_calls_left()
        if left is not None and count > left:
            raise BudgetExceeded(
                "sub_calls",
                f"a batch of {count:,} sub-calls was refused before any was sent: only "
                f"{left:,} of the run's {self.limits.max_sub_calls:,} are left; send at "
                "most that many (fewer, larger chunks), or aggregate what you have",
            )
        self.sub_calls += count

    def exceeded(self) -> BudgetExceeded | None:
        """The first spent budget, if any (checked before each step)."""
        lim = self.limits
        if lim.max_tokens is not None and self.usage.total_tokens >= lim.max_tokens:
            return BudgetExceeded(
                "tokens", f"token budget of {lim.max_tokens} spent ({self.usage.total_tokens})"
            )
        if lim.max_cost_usd is not None and self.cost_known_usd >= lim.max_cost_usd:
            return BudgetExceeded(
                "cost", f"cost budget of ${lim.max_cost_usd:.4f} spent (${self.cost_known_usd:.4f})"
            )
        remaining = self.remaining_s()
        if remaining is not None and remaining <= 0:
            return BudgetExceeded("time", f"time budget of {lim.max_seconds}s spent")
        return None

    def check(self) -> None:
        error = self.exceeded()
        if error is not None:
            raise error

    def describe(self) -> str:
        """One line for the root prompt: what is left."""
        parts = [f"sub-calls used {self.sub_calls}"]
        lim = self.limits
        if lim.max_sub_calls is not None:
            parts[0] += f"/{lim.max_sub_calls}"
        if lim.max_tokens is not None:
            parts.append(f"tokens used {self.usage.total_tokens}/{lim.max_tokens}")
        if lim.max_cost_usd is not None:
            parts.append(f"cost ${self.cost_known_usd:.4f}/${lim.max_cost_usd:.4f}")
        remaining = self.remaining_s()
        if remaining is not None:
            parts.append(f"{max(remaining, 0):.0f}s left")
        return ", ".join(parts)
