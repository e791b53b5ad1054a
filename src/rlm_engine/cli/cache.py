"""``rlm cache``: the persistent response cache that ``rlm ask`` keeps in the store.

Replies to identical sub-calls (same model, messages and settings) are reused across runs
at temperature 0, or always with ``--response-cache on``. The cache grows until cleared.
"""

from __future__ import annotations

import argparse

from rlm_engine.cli.store_access import cli_store, print_json
from rlm_engine.errors import ConfigurationError


def cache_stats(args: argparse.Namespace) -> int:
    with cli_store() as store:
        stats = store.response_cache_stats()
    if args.json:
        print_json([{"model": s.model, "entries": s.entries, "hits": s.hits} for s in stats])
        return 0
    if not stats:
        print("the response cache is empty")
    for s in stats:
        print(f"{s.model}: {s.entries} entries, {s.hits} hits")
    return 0


def cache_clear(args: argparse.Namespace) -> int:
    days: float | None = args.unused_for_days
    if days is not None and days < 0:
        raise ConfigurationError("--unused-for-days must not be negative")
    with cli_store() as store:
        removed = store.clear_response_cache(
            model=args.model, unused_for_s=None if days is None else days * 86_400
        )
    if args.json:
        print_json({"removed": removed})
    else:
        print(f"removed {removed} cached replies")
    return 0
