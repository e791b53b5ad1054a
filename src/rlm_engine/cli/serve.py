"""``rlm serve``: the HTTP API under uvicorn.

A server without API keys answers anyone as the one local tenant, so it binds only a
loopback address; serving other hosts needs a key first, which then every request needs.
"""

from __future__ import annotations

import argparse
import importlib.util
import ipaddress
import sys
import threading
import time

from rlm_engine.errors import ConfigurationError, MissingExtraError
from rlm_engine.settings import Settings

FACTORY = "rlm_engine.server:app_from_env"


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def check_bind(host: str, has_keys: bool) -> None:
    """Refuse a non-loopback ``host`` while the store holds no API key."""
    if has_keys or is_loopback(host):
        return
    raise ConfigurationError(
        f"refusing to serve on {host}: there is no API key, so anyone who can reach the "
        "server would act as the local tenant",
        hint="create a key first (`rlm keys create --tenant NAME`), or serve on 127.0.0.1",
    )


def _require_server_extra() -> None:
    for module in ("fastapi", "uvicorn", "sse_starlette", "python_multipart"):
        if importlib.util.find_spec(module) is None:
            raise MissingExtraError("rlm serve", "server", module)


def open_when_ready(url: str, *, wait_s: float = 30.0) -> threading.Thread:
    """Open ``url`` in a browser once the server answers ``/readyz`` (in the background:
    the server starts meanwhile); on a machine without a browser, say where to go."""

    def go() -> None:
        import webbrowser

        import httpx

        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}readyz", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        if not webbrowser.open(url):
            print(f"rlm: no browser to open here; visit {url}", file=sys.stderr)

    thread = threading.Thread(target=go, name="rlm-open-browser", daemon=True)
    thread.start()
    return thread


def run_serve(args: argparse.Namespace) -> int:
    _require_server_extra()
    from rlm_engine.cli.store_access import cli_store

    settings = Settings.from_env()
    with cli_store(settings) as store:  # also fails early on a store that cannot open
        has_keys = store.any_api_keys()
    check_bind(args.host, has_keys)

    import uvicorn

    shown = f"[{args.host}]" if ":" in args.host else args.host
    url = f"http://{shown}:{args.port}/"
    print(f"rlm: web UI at {url} (API docs at {url}docs)", file=sys.stderr)
    if args.open and args.port:
        open_when_ready(url)
    if args.workers > 1:
        # Each worker process builds its own app (and services) from the environment.
        uvicorn.run(
            FACTORY,
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            log_level=args.log_level,
        )
        return 0
    from rlm_engine.server import create_app

    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level=args.log_level)
    return 0
