"""The app in-process for the route tests: real services on a SQLite store under a test
home, models on the simulator, requests through `httpx.ASGITransport` (no socket)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from rlm_engine.server import create_app
from rlm_engine.service import Services
from rlm_engine.service.keys import create_key
from rlm_engine.settings import Settings
from rlm_engine.sim.policies import message_text

MODEL = "sim/route-tests"
SLOW_ROOT_S = 30.0


def is_root(messages: list[dict[str, Any]]) -> bool:
    return bool(messages) and message_text(messages[0]).startswith("You answer a question")


def answering(answer: str) -> Callable[[list[dict[str, Any]]], str]:
    """A policy whose root answers ``answer`` at once (sub-calls echo "ok")."""

    def policy(messages: list[dict[str, Any]]) -> str:
        return f"FINAL({answer})" if is_root(messages) else "ok"

    return policy


def slow_root(messages: list[dict[str, Any]]) -> Awaitable[str] | str:
    """A root that takes long to answer: a run that is still going when a test acts."""

    async def later() -> str:
        await asyncio.sleep(SLOW_ROOT_S)
        return "FINAL(late)"

    return later() if is_root(messages) else "ok"


@dataclass
class Api:
    app: FastAPI
    settings: Settings

    @property
    def services(self) -> Services:
        services: Services = self.app.state.services
        return services

    def client(self, key: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        transport = httpx.ASGITransport(app=self.app)
        return httpx.AsyncClient(
            transport=transport, base_url="http://rlm.test", headers=headers, timeout=60
        )

    def key(self, tenant: str, name: str = "") -> str:
        _, secret = create_key(self.services.store, tenant, name)
        return secret


def api_settings(home: Path, sim_url: str, **fields: Any) -> Settings:
    fields.setdefault("model", MODEL)
    return Settings(home=home, env={"RLM_SIM_URL": sim_url}, **fields)


@asynccontextmanager
async def running_api(settings: Settings) -> AsyncIterator[Api]:
    """The app with its lifespan running (services open, queue serving)."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield Api(app, settings)


async def wait_terminal(client: httpx.AsyncClient, run_id: str, timeout_s: float = 60) -> Any:
    """The run once it is no longer queued or running."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        body = (await client.get(f"/v1/runs/{run_id}")).json()
        if body["status"] not in ("queued", "running"):
            return body
        assert asyncio.get_running_loop().time() < deadline, body
        await asyncio.sleep(0.05)


def sse_events(text: str) -> list[dict[str, str]]:
    """The events of an SSE body (comments dropped), each as its field: value pairs."""
    events: list[dict[str, str]] = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
        if fields:
            events.append(fields)
    return events
