"""``rlm runs resume`` and ``rlm replay``: continue or re-run a recorded run from its journal."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses

from rlm_engine.cli.outcome import exit_code, print_result
from rlm_engine.cli.progress import Progress
from rlm_engine.cli.run_records import check_recorded
from rlm_engine.cli.run_setup import (
    StoreEventSink,
    build_rlm,
    context_scratch,
    listeners,
    memory_for,
    run_and_record,
    run_context,
)
from rlm_engine.cli.session_restore import past_runs, restored_runs, restorer
from rlm_engine.cli.store_access import cli_store, require_run
from rlm_engine.engine.journal_store import StoreJournal
from rlm_engine.engine.result import RunResult
from rlm_engine.errors import ConfigurationError, RLMError
from rlm_engine.settings import Settings
from rlm_engine.store.errors import RunNotResumableError
from rlm_engine.store.records import Run
from rlm_engine.store.run_rules import INTERRUPTED_DETAIL


def _as_it_was(run: Run) -> Run:
    """The run a failed attempt hands back: one whose process died while running is put
    back as interrupted (what `mark_interrupted_runs` would have made it)."""
    if run.status != "running":
        return run
    return dataclasses.replace(
        run, status="interrupted", stop_reason="interrupted", detail=INTERRUPTED_DETAIL
    )


def run_resume(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    with cli_store(settings) as store, context_scratch() as scratch:
        store.mark_interrupted_runs()
        before = _as_it_was(require_run(store, args.run_id))
        check_recorded(before, "resume")
        try:
            run = store.claim_run(args.run_id)
        except RunNotResumableError as exc:
            raise ConfigurationError(str(exc), hint=exc.hint) from exc
        try:
            sink = StoreEventSink(store)
            progress = Progress(verbose=args.verbose)
            # A session's run began in a REPL restored from earlier runs: rebuild the same.
            earlier = restored_runs(store, run)
            rlm = build_rlm(
                run.settings,
                settings,
                on_event=listeners(run.run_id, sink, progress),
                memory=memory_for(store, run.session),
                persistent=bool(earlier),
                store=store,
            )
            context = run_context(store, run, scratch)
            past = past_runs(store, earlier, scratch)
        except RLMError as exc:
            # Nothing ran: the run stays as resumable as it was, with the reason kept.
            store.abandon_attempt(run.run_id, previous=before, error=f"{type(exc).__name__}: {exc}")
            raise
        result = run_and_record(
            rlm,
            store,
            sink,
            progress,
            run_id=run.run_id,
            question=run.question,
            context=context,
            journal=StoreJournal(store, run.run_id, accept_divergence=args.accept_divergence),
            resuming=before,
            before=restorer(rlm, past) if past else None,
        )
    print_result(result, args.json)
    return exit_code(result)


def run_replay(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    with cli_store(settings) as store, context_scratch() as scratch:
        run = require_run(store, args.run_id)
        check_recorded(run, "replay")
        progress = Progress(verbose=args.verbose)
        earlier = restored_runs(store, run)
        # Offline: stand-in models that refuse, a read-only journal, throwaway memory.
        rlm = build_rlm(
            run.settings,
            settings,
            on_event=progress,
            memory={},
            persistent=bool(earlier),
            offline=True,
        )
        context = run_context(store, run, scratch)
        past = past_runs(store, earlier, scratch)

        async def replay() -> RunResult:
            try:
                if past:
                    await restorer(rlm, past)()
                journal = StoreJournal(store, run.run_id, read_only=True)
                return await rlm.arun(run.question, context, run_id=run.run_id, journal=journal)
            finally:
                await rlm.aclose()

        with progress:
            result = asyncio.run(replay())
    print_result(result, args.json)
    return exit_code(result)
