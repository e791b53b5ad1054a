"""Simulators started in this process by the ``sim/<policy>`` model string.

``sim/oracle`` must run in the process that generated the benchmark tasks, because the
oracle answers from the ground truth registered there; ``sim/echo`` is handy for wiring
checks. One server per policy is started on first use and reused by every model built
afterwards; it runs on a daemon thread until the process exits.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from types import MappingProxyType

from rlm_engine.sim.config import SimConfig
from rlm_engine.sim.oracle import OraclePolicy
from rlm_engine.sim.policies import EchoPolicy, Policy
from rlm_engine.sim.runner import SimServerThread

# A GPT-5-sized input window, so the direct baseline overflows where a real model would.
DEFAULT_CONTEXT_WINDOW_TOKENS = 272_000

POLICIES: Mapping[str, Callable[[], Policy]] = MappingProxyType(
    {"oracle": OraclePolicy, "echo": EchoPolicy}
)

_lock = threading.Lock()
_servers: dict[str, SimServerThread] = {}


def has_policy(name: str) -> bool:
    """Whether ``sim/<name>`` can start an in-process simulator."""
    return name in POLICIES


def in_process_url(
    name: str, *, context_window_tokens: int | None = DEFAULT_CONTEXT_WINDOW_TOKENS
) -> str:
    """Base URL of this process's simulator for policy ``name``, started if needed.

    The window applies when the server is first started.
    """
    factory = POLICIES.get(name)
    if factory is None:
        raise KeyError(f"no simulator policy {name!r}; known: {', '.join(POLICIES)}")
    with _lock:
        server = _servers.get(name)
        if server is None:
            config = SimConfig(models=(name,), context_window_tokens=context_window_tokens)
            server = SimServerThread(config, factory())
            server.start()
            _servers[name] = server
        return server.url
