"""Ways to run the simulator: on a background thread for sync code, or as a long-lived service."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import replace
from types import TracebackType

from rlm_engine.sim.chat_request import RequestRecord
from rlm_engine.sim.config import DEFAULT_SIM_PORT, SimConfig
from rlm_engine.sim.policies import Policy
from rlm_engine.sim.server import SimServer

_START_TIMEOUT_S = 10.0


class SimServerThread:
    """Runs a ``SimServer`` on its own event loop in a daemon thread.

    Use as a context manager from synchronous code::

        with SimServerThread(SimConfig(), EchoPolicy()) as sim:
            client = OpenAI(base_url=sim.url, api_key="sim")
    """

    def __init__(self, config: SimConfig | None = None, policy: Policy | None = None) -> None:
        self.server = SimServer(config, policy)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None

    @property
    def url(self) -> str:
        """Base URL for OpenAI clients, ending in ``/v1``."""
        return self.server.url

    @property
    def requests(self) -> list[RequestRecord]:
        """A copy of the request log, with every request whose reply has been sent.

        A handler logs its request right after writing the reply, with no await between,
        but this thread may read the log in between (the GIL switches threads anywhere);
        so the copy is taken on the server's loop, which runs one handler step at a time.
        """
        loop = self._loop
        if loop is None or not loop.is_running() or threading.current_thread() is self._thread:
            return self.server.requests

        async def snapshot() -> list[RequestRecord]:
            return self.server.requests

        return asyncio.run_coroutine_threadsafe(snapshot(), loop).result(_START_TIMEOUT_S)

    def start(self) -> None:
        """Start the thread and wait until the server listens."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="rlm-sim", daemon=True)
        self._thread.start()
        if not self._ready.wait(_START_TIMEOUT_S):
            raise RuntimeError("simulator thread did not start in time")
        if self._startup_error is not None:
            raise RuntimeError("simulator failed to start") from self._startup_error

    def stop(self) -> None:
        """Stop the server and join the thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        stopped: Future[None] = asyncio.run_coroutine_threadsafe(self.server.stop(), loop)
        stopped.result(timeout=_START_TIMEOUT_S)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=_START_TIMEOUT_S)
        self._loop = self._thread = None

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self.server.start())
        except BaseException as exc:  # Reported to the starting thread, which raises it.
            self._startup_error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    def __enter__(self) -> SimServerThread:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


async def serve(
    host: str = "127.0.0.1",
    port: int = DEFAULT_SIM_PORT,
    config: SimConfig | None = None,
    policy: Policy | None = None,
    *,
    on_ready: Callable[[SimServer], None] | None = None,
) -> None:
    """Run the simulator until cancelled (the body of ``rlm sim serve``).

    ``host`` and ``port`` override those in ``config``; ``on_ready`` is called once the
    server listens, e.g. to print its URL.
    """
    base = config or SimConfig()
    server = SimServer(_with_address(base, host, port), policy)
    await server.start()
    try:
        if on_ready is not None:
            on_ready(server)
        await asyncio.Event().wait()
    finally:
        await server.stop()


def _with_address(config: SimConfig, host: str, port: int) -> SimConfig:
    return replace(config, host=host, port=port)
