"""Child RLMs of one run: per-depth slots and the cap on how many may start.

Slots are per depth so that a wait can only point downwards: a child at depth ``d`` holds
a slot of depth ``d`` while it waits for slots of depth ``d + 1``, and a child at the
deepest level makes only plain model calls, whose provider slot is held for the request
alone. A chain of waits therefore ends at the bottom level, which always progresses, so
no cycle of waits (a deadlock) can form, however wide each level fans out.

Every model request of the run, a child's own root turns included, also takes one of the
run's ``max_concurrency`` provider slots (``engine.calls.call_model``). Those are held for
one request and released before the reply is used, so a parent's cell that waits for its
children holds none: they are the ends of wait chains, never links in one, and bound the
requests in flight at the provider across the whole tree.
"""

from __future__ import annotations

import asyncio

from rlm_engine.errors import BudgetExceeded


class ChildLimitExceeded(BudgetExceeded):
    """Starting these child RLMs would pass the run's cap; none of them was started."""

    def __init__(self, message: str) -> None:
        super().__init__("children", message)
        self.hint = "raise --max-children (RLM(max_children=...))"


class ChildSlots:
    """``per_depth`` child RLMs may run at once at each depth; ``limit`` may start in all."""

    def __init__(self, per_depth: int, limit: int | None) -> None:
        self._per_depth = per_depth
        self._slots: dict[int, asyncio.Semaphore] = {}
        self.limit = limit
        self.started = 0

    def slot(self, depth: int) -> asyncio.Semaphore:
        """The slots of children at ``depth`` (the root is depth 0)."""
        slots = self._slots.get(depth)
        if slots is None:
            slots = self._slots[depth] = asyncio.Semaphore(self._per_depth)
        return slots

    def check(self, count: int, what: str) -> None:
        """Refuse ``count`` more children, before any starts, if they do not all fit."""
        if self.limit is None or self.started + count <= self.limit:
            return
        left = max(self.limit - self.started, 0)
        raise ChildLimitExceeded(
            f"{what} would start {count} child RLM(s) but a run may start {self.limit} "
            f"({self.started} started, {left} left); none was started: answer from what "
            "you have, ask fewer, or use llm_query/llm_query_batched (plain calls)"
        )

    def admit(self, count: int, what: str) -> None:
        """Check ``count`` children and count them as started."""
        self.check(count, what)
        self.started += count
