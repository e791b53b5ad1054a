"""SDK clients per event loop, spread over several when many requests are in flight."""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Generic, TypeVar

C = TypeVar("C")


class _Clients(Generic[C]):
    def __init__(self) -> None:
        self.clients: list[C] = []
        self.in_flight: list[int] = []


class ClientPool(Generic[C]):
    """Hands out vendor SDK clients for the running event loop.

    Each loop gets its own clients, because pooled connections cannot move between loops
    (a synchronous caller may run several loops in turn). httpx's connection pool does work
    proportional to its pending requests on every state change, so hundreds of concurrent
    requests on one client cost quadratic time: another client is opened whenever every
    open one already carries ``per_client`` requests, up to ``max_clients``.

    A ``fixed`` client (injected by tests or callers) is always used and never closed.
    """

    def __init__(
        self,
        factory: Callable[[], C],
        close: Callable[[C], Awaitable[None]],
        *,
        fixed: C | None = None,
        per_client: int = 64,
        max_clients: int = 16,
    ) -> None:
        self._factory = factory
        self._close = close
        self._fixed = fixed
        self._per_client = per_client
        self._max_clients = max_clients
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Clients[C]] = (
            weakref.WeakKeyDictionary()
        )

    def open_clients(self) -> int:
        """How many clients the running loop has opened."""
        clients = self._by_loop.get(asyncio.get_running_loop())
        return len(clients.clients) if clients is not None else 0

    def _pick(self, clients: _Clients[C]) -> int:
        if clients.in_flight:
            index = min(range(len(clients.in_flight)), key=clients.in_flight.__getitem__)
            full = clients.in_flight[index] >= self._per_client
            if not full or len(clients.clients) >= self._max_clients:
                return index
        clients.clients.append(self._factory())
        clients.in_flight.append(0)
        return len(clients.clients) - 1

    @contextlib.asynccontextmanager
    async def lease(self) -> AsyncGenerator[C, None]:
        """A client for one request (or one whole stream)."""
        if self._fixed is not None:
            yield self._fixed
            return
        loop = asyncio.get_running_loop()
        clients = self._by_loop.get(loop)
        if clients is None:
            clients = self._by_loop[loop] = _Clients()
        index = self._pick(clients)
        clients.in_flight[index] += 1
        try:
            yield clients.clients[index]
        finally:
            clients.in_flight[index] -= 1

    async def aclose(self) -> None:
        """Close the clients opened in the running loop."""
        clients = self._by_loop.pop(asyncio.get_running_loop(), None)
        if clients is not None:
            for client in clients.clients:
                await self._close(client)
