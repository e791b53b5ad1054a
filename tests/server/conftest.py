"""Fixtures of the server acceptance tests: the simulator on a thread of this process,
real `rlm serve` processes on loopback ports, a private Postgres schema per test."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from server_support import Launch, LiveServer, StartSimThread, postgres_schema, start_server

from rlm_engine.sim import Policy, SimConfig, SimServerThread


@pytest.fixture
def sim_thread() -> Iterator[StartSimThread]:
    """Start simulators on loopback threads (their request logs are this process's)."""
    started: list[SimServerThread] = []

    def start(config: SimConfig | None = None, policy: Policy | None = None) -> SimServerThread:
        sim = SimServerThread(config, policy)
        sim.start()
        started.append(sim)
        return sim

    yield start
    for sim in started:
        sim.stop()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A Postgres store URL with a fresh schema as its search_path."""
    with postgres_schema() as url:
        yield url


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Launch]:
    """Start `rlm serve` processes; every one still alive is stopped after the test."""
    servers: list[LiveServer] = []

    def start(env: Mapping[str, str], *, port: int | None = None) -> LiveServer:
        server = start_server(env, tmp_path / "logs", port=port)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
