"""Fixtures of the MCP tests: the simulator on a thread, real `rlm serve` processes, and
a small task the oracle solves, kept as a file under an allowed root."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

# The server tests' harness (real processes on loopback ports) is shared, not copied.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "server"))

from server_support import LiveServer, start_server

from rlm_engine.sim import Policy, SimConfig, SimServerThread


@pytest.fixture
def sim_thread() -> Iterator[object]:
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
def launch(tmp_path: Path) -> Iterator[object]:
    servers: list[LiveServer] = []

    def start(env: Mapping[str, str]) -> LiveServer:
        server = start_server(env, tmp_path / "logs")
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
