"""Fixtures of the browser acceptance tests: the simulator on a thread of this process,
real `rlm serve` processes on loopback ports, and Debian's Chromium driven by Playwright.

Chromium is a subprocess: the network guard of this process does not reach it, so pages
are only ever given the server's loopback URL.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

# The server tests' helpers (starting `rlm serve`, its environment) are reused as they
# are; pytest puts only this folder on sys.path for these tests.
_SERVER_TESTS = str(Path(__file__).resolve().parent.parent / "server")
if _SERVER_TESTS not in sys.path:
    sys.path.insert(0, _SERVER_TESTS)

from server_support import LiveServer, start_server  # noqa: E402
from ui_support import VIEWPORT, launch_chromium  # noqa: E402

from rlm_engine.sim import Policy, SimConfig, SimServerThread  # noqa: E402

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page


@pytest.fixture
def sim_thread() -> Iterator[object]:
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
def launch(tmp_path: Path) -> Iterator[object]:
    """Start `rlm serve` processes; every one still alive is stopped after the test."""
    servers: list[LiveServer] = []

    def start(env: Mapping[str, str], *, port: int | None = None) -> LiveServer:
        server = start_server(env, tmp_path / "logs", port=port)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


@pytest.fixture
def context(browser: Browser, tmp_path: Path) -> Iterator[BrowserContext]:
    """A fresh browser profile (its own sessionStorage) per test, 1280x800."""
    ctx = browser.new_context(viewport=VIEWPORT, accept_downloads=True)  # type: ignore[arg-type]
    yield ctx
    ctx.close()


@pytest.fixture
def page(context: BrowserContext, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Page]:
    tab = context.new_page()
    yield tab
    # What the page showed when the test ended, for a failure's report.
    tab.screenshot(path=str(tmp_path / "last-page.png"))
