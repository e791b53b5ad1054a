"""The simulator as a test fixture (`start_sim` in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from rlm_engine.sim import SimServer

StartSim = Callable[..., Awaitable[SimServer]]
