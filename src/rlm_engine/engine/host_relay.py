"""The REPL's host handler of a persistent session.

A session's sandbox outlives the run whose loop started it, and a sandbox keeps the
handler it was built with; the relay is that handler and serves each call with whoever
serves the session now (the current run's broker, or the restore of a session)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rlm_engine.errors import RLMError
from rlm_engine.sandbox.base import HostHandler


class HostRelay:
    """A ``HostHandler`` that forwards to ``target``."""

    def __init__(self, target: HostHandler | None = None) -> None:
        self.target = target

    async def __call__(self, method: str, params: Mapping[str, Any]) -> Any:
        if self.target is None:
            raise RLMError(f"{method}: nothing serves this REPL's host calls now")
        return await self.target(method, params)
