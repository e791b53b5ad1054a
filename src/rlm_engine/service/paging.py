"""Opaque cursors of run listings: the (created_at, run_id) of the last run of a page."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

from rlm_engine.errors import ConfigurationError
from rlm_engine.store.records import Run


@dataclass(frozen=True, slots=True)
class RunPage:
    """One page of runs, newest first; `next_cursor` fetches the next (None: the last)."""

    runs: tuple[Run, ...]
    next_cursor: str | None


def cursor_after(run: Run) -> str:
    raw = json.dumps([run.created_at, run.run_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def parse_cursor(cursor: str) -> tuple[float, str]:
    """The position a cursor of `cursor_after` names; `ConfigurationError` otherwise."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, run_id = json.loads(raw)
        if isinstance(created_at, (int, float)) and isinstance(run_id, str):
            return float(created_at), run_id
    except (ValueError, TypeError):
        pass
    raise ConfigurationError(
        f"invalid cursor {cursor!r}", hint="pass the next_cursor of the previous page as is"
    )
