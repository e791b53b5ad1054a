"""The run service: one run lifecycle below every edge (the CLI, the HTTP server, jobs).

`open_services(settings)` opens the store the settings name and builds the run service,
the durable queue and the sessions on it; `Services.aclose()` closes them all.

Nothing heavy is imported at package import: each edge imports the module it needs, so
``rlm --help`` loads none of the engine."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rlm_engine.service.limits import ServiceLimits
    from rlm_engine.service.queue import RunQueue
    from rlm_engine.service.runs import RunService
    from rlm_engine.service.sessions import SessionService
    from rlm_engine.settings import Settings
    from rlm_engine.store.protocol import Store


@dataclass(frozen=True, slots=True)
class Services:
    """Everything an edge calls, on one store."""

    store: Store
    runs: RunService
    queue: RunQueue
    sessions: SessionService
    settings: Settings
    limits: ServiceLimits

    async def aclose(self) -> None:
        """Stop the queue, stop running runs as "interrupted" (resumable), close the store."""
        try:
            await self.queue.aclose()
            await self.runs.aclose()
        finally:
            await asyncio.to_thread(self.store.close)


def open_services(settings: Settings, *, limits: ServiceLimits | None = None) -> Services:
    """The services on the store ``settings`` name, with ``limits`` (default: the
    settings' own). Raises `StoreAccessError` when the store cannot be opened."""
    from rlm_engine.service.limits import ServiceLimits
    from rlm_engine.service.queue import SERVICE_HEARTBEAT_S, STALE_AFTER_S, RunQueue
    from rlm_engine.service.runs import RunService
    from rlm_engine.service.sandboxes import SandboxPools
    from rlm_engine.service.sessions import SessionService
    from rlm_engine.service.store_opening import open_settings_store
    from rlm_engine.settings import DEFAULT_WARM_POOL

    limits = limits or ServiceLimits.from_settings(settings)
    store = open_settings_store(settings)
    try:
        # Runs beat often enough that another process takes over a dead one within
        # `STALE_AFTER_S`, and notices a cancel asked for elsewhere within seconds.
        runs = RunService(
            store,
            settings,
            limits=limits,
            heartbeat_s=SERVICE_HEARTBEAT_S,
            sandboxes=SandboxPools(
                DEFAULT_WARM_POOL if settings.warm_pool is None else settings.warm_pool
            ),
        )
        return Services(
            store=store,
            runs=runs,
            queue=RunQueue(runs, store, limits, stale_after_s=STALE_AFTER_S),
            sessions=SessionService(store, settings, limits),
            settings=settings,
            limits=limits,
        )
    except BaseException:
        store.close()
        raise
