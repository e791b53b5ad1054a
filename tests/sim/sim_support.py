"""Helpers shared by the simulator tests."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from rlm_engine.sim import SimServer

StartSim = Callable[..., Awaitable[SimServer]]
