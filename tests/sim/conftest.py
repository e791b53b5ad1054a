"""Fixtures for the simulator tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sim_support import StartSim

from rlm_engine.sim import Policy, SimConfig, SimServer


@pytest.fixture
async def start_sim() -> AsyncIterator[StartSim]:
    """Start simulators on 127.0.0.1; all are stopped after the test."""
    servers: list[SimServer] = []

    async def start(config: SimConfig | None = None, policy: Policy | None = None) -> SimServer:
        server = SimServer(config, policy)
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop()
