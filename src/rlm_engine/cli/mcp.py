"""``rlm mcp``: the MCP server over stdio, on the local store, as the local tenant.

The process runs its own run queue (the runs it submits, and any other queued run of the
store it claims), so a run ``rlm_ask`` starts is a durable run like any other: listed by
``rlm runs list``, resumable after a crash. Stdout carries the protocol only.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
from pathlib import Path
from typing import TYPE_CHECKING

from rlm_engine.errors import MissingExtraError
from rlm_engine.settings import Settings

if TYPE_CHECKING:
    from rlm_engine.mcp.roots import Roots


def run_mcp(args: argparse.Namespace) -> int:
    if importlib.util.find_spec("mcp") is None:
        raise MissingExtraError("rlm mcp", "mcp", "mcp")
    from rlm_engine.mcp.roots import Roots

    chosen = tuple(Path(p) for p in args.root)
    # Explicit roots are the operator's word; the default gives way to a client's own.
    roots = Roots(operator=chosen or (Path(os.getcwd()),), client_replaces=not chosen)
    asyncio.run(_serve(Settings.from_env(), roots))
    return 0


async def _serve(settings: Settings, roots: Roots) -> None:
    from rlm_engine.mcp.runs import McpRuns
    from rlm_engine.mcp.server import build_server
    from rlm_engine.service import open_services
    from rlm_engine.service.principal import Principal

    services = await asyncio.to_thread(open_services, settings)
    stop = asyncio.Event()
    queue = asyncio.create_task(services.queue.serve(stop), name="rlm-mcp-queue")
    local = Principal.local()
    runs = McpRuns(services, roots, isolation="auto")
    try:
        await build_server(lambda: runs, lambda _ctx: local).run_stdio_async()
    finally:
        stop.set()
        try:
            await queue
        finally:
            await services.aclose()
