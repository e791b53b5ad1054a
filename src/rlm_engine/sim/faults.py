"""Which fault, if any, the next admitted request suffers."""

from __future__ import annotations

import random

from rlm_engine.sim.config import FaultKind, SimConfig


class FaultPlan:
    """Scripted faults first, in order; then faults drawn at their configured rates."""

    def __init__(self, config: SimConfig) -> None:
        self._script = config.fault_script
        self._rates = dict(config.fault_rates)
        self._rng = random.Random(config.seed)
        self._index = 0

    def next_fault(self) -> FaultKind | None:
        """The fault for the next request (``None``: answer normally)."""
        index = self._index
        self._index += 1
        if index < len(self._script):
            return self._script[index]
        if not self._rates:
            return None
        # One draw per request keeps a seeded run reproducible whatever the rates are.
        draw = self._rng.random()
        cumulative = 0.0
        for kind, rate in self._rates.items():
            cumulative += rate
            if draw < cumulative:
                return kind
        return None
