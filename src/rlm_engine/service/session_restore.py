"""A session's REPL, rebuilt from its earlier runs' cells before a new question.

No model is called while restoring, and the new question uses the models and settings
given now (see ``engine.restore``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from rlm_engine.engine.restore import PastRun
from rlm_engine.engine.restore_store import past_run
from rlm_engine.engine.rlm import RLM
from rlm_engine.errors import ContextError
from rlm_engine.sandbox.base import ContextValue
from rlm_engine.service.contexts import run_context
from rlm_engine.service.principal import Principal
from rlm_engine.service.spec import RunSpec
from rlm_engine.store.errors import SessionNotFoundError
from rlm_engine.store.protocol import Store
from rlm_engine.store.records import Run


def session_runs(store: Store, session: str | None, who: Principal) -> list[Run]:
    """The finished runs of a session (opened for ``who``'s tenant if new), oldest first:
    their cells restore its REPL. Another tenant's session is `SessionNotFoundError`."""
    if session is None:
        return []
    found = store.get_session(session)
    if found is not None and found.tenant != who.tenant:
        raise SessionNotFoundError(session)
    store.open_session(session, tenant=who.tenant)
    runs = store.list_runs(limit=10_000, session=session, tenant=who.tenant)
    return [r for r in reversed(runs) if r.status == "completed"]


def restored_runs(store: Store, run: Run) -> list[Run]:
    """The runs ``run``'s REPL was restored from when it began (none outside a session):
    resuming or replaying it restores the same, so its first prompt is the same too."""
    ids = list(RunSpec.from_json(run.settings).restored_from)
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


def restorer(
    rlm: RLM, past: Sequence[PastRun], warn: Callable[[str], None]
) -> Callable[[], Awaitable[None]] | None:
    """What runs before the question: the restore, whose warnings go to ``warn`` (a
    session is a convenience, not a replay guarantee). None with nothing to restore."""
    if not past:
        return None

    async def restore() -> None:
        report = await rlm.arestore(past)
        for warning in report.warnings:
            warn(f"restoring the session: {warning}")

    return restore
