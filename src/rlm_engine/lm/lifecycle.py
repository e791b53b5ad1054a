"""Closing what adapters open: vendor streams and per-loop HTTP clients."""

from __future__ import annotations

import inspect
from typing import Any


async def close_quietly(resource: object) -> None:
    """Call ``resource``'s ``aclose()`` or ``close()`` (sync or async) if it has one.

    Used on vendor stream objects whose close method differs between SDKs and versions.
    """
    close: Any = getattr(resource, "aclose", None) or getattr(resource, "close", None)
    if close is None:
        return
    result: object = close()
    if inspect.isawaitable(result):
        await result


async def aclose_model(model: object) -> None:
    """Release a model's HTTP clients (for the running event loop), through any wrappers."""
    close: Any = getattr(model, "aclose", None)
    if close is not None:
        await close()
