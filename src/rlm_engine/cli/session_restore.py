"""``rlm ask --session NAME``: the REPL of a session, rebuilt from its earlier runs' cells.

No model is called while restoring, and the new question uses the models and settings
given now (see ``engine.restore``)."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import cast

from rlm_engine.cli.run_setup import run_context
from rlm_engine.engine.restore import PastRun
from rlm_engine.engine.restore_store import past_run
from rlm_engine.engine.rlm import RLM
from rlm_engine.errors import ContextError
from rlm_engine.sandbox.base import ContextValue
from rlm_engine.store.protocol import Store
from rlm_engine.store.records import Run

RESTORED_FROM = "session_runs"
"""The key of a run's settings naming the earlier runs its session was restored from."""


def session_runs(store: Store, session: str | None) -> list[Run]:
    """The finished runs of a session, oldest first: their cells restore its REPL."""
    if session is None:
        return []
    store.open_session(session)
    runs = store.list_runs(limit=10_000, session=session)
    return [r for r in reversed(runs) if r.status == "completed"]


def restored_runs(store: Store, run: Run) -> list[Run]:
    """The runs ``run``'s REPL was restored from when it began (none outside a session):
    resuming or replaying it restores the same, so its first prompt is the same too."""
    raw: object = run.settings.get(RESTORED_FROM)
    ids = [str(i) for i in cast(list[object], raw)] if isinstance(raw, list) else []
    found = [store.get_run(run_id) for run_id in ids]
    missing = [i for i, r in zip(ids, found, strict=True) if r is None]
    if missing:
        raise ContextError(
            f"run {run.run_id} continued its session from runs that were deleted since "
            f"({', '.join(missing)}), so its REPL cannot be rebuilt",
            hint="ask the question again in the session",
        )
    return [r for r in found if r is not None]


def past_runs(store: Store, runs: Sequence[Run], scratch: Path) -> list[PastRun]:
    """The runs' cells and recorded sub-call replies, each with the context it saw (runs
    that saw the same bytes share one copy, so the REPL loads it once)."""
    contexts: dict[str, ContextValue] = {}
    past: list[PastRun] = []
    for run in runs:
        if run.context_hash is not None and run.context_hash in contexts:
            context = contexts[run.context_hash]
        else:
            context = run_context(store, run, scratch)
            if run.context_hash is not None:
                contexts[run.context_hash] = context
        past.append(past_run(store, run, context))
    return past


def restorer(rlm: RLM, past: Sequence[PastRun]) -> Callable[[], Awaitable[None]]:
    """What ``run_and_record`` runs before the question: the restore, whose warnings go
    to stderr (a session is a convenience, not a replay guarantee)."""

    async def restore() -> None:
        report = await rlm.arestore(past)
        for warning in report.warnings:
            print(f"rlm: warning: restoring the session: {warning}", file=sys.stderr)

    return restore
