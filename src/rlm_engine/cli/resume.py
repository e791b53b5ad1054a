"""``rlm runs resume`` and ``rlm replay``: continue or re-run a recorded run from its journal."""

from __future__ import annotations

import argparse
import asyncio

from rlm_engine.cli.progress import Progress
from rlm_engine.cli.run_setup import (
    StoreEventSink,
    build_rlm,
    context_scratch,
    listeners,
    memory_for,
    run_and_record,
    run_context,
)
from rlm_engine.cli.store_access import cli_store, require_run
from rlm_engine.engine.journal_store import StoreJournal
from rlm_engine.engine.result import RunResult
from rlm_engine.errors import ConfigurationError
from rlm_engine.settings import Settings
from rlm_engine.store.errors import RunNotResumableError


def run_resume(args: argparse.Namespace) -> int:
    from rlm_engine.cli.ask import print_result

    settings = Settings.from_env()
    with cli_store(settings) as store, context_scratch() as scratch:
        store.mark_interrupted_runs()
        require_run(store, args.run_id)
        try:
            run = store.claim_run(args.run_id)
        except RunNotResumableError as exc:
            raise ConfigurationError(str(exc)) from exc
        sink = StoreEventSink(store)
        progress = Progress(verbose=args.verbose)
        rlm = build_rlm(
            run.settings,
            settings,
            on_event=listeners(run.run_id, sink, progress),
            memory=memory_for(store, run.session),
            store=store,
        )
        result = run_and_record(
            rlm,
            store,
            sink,
            progress,
            run_id=run.run_id,
            question=run.question,
            context=run_context(store, run, scratch),
            journal=StoreJournal(store, run.run_id),
        )
    print_result(result, args.json)
    return 1 if result.stop_reason == "error" else 0


def run_replay(args: argparse.Namespace) -> int:
    from rlm_engine.cli.ask import print_result

    settings = Settings.from_env()
    with cli_store(settings) as store, context_scratch() as scratch:
        run = require_run(store, args.run_id)
        progress = Progress(verbose=args.verbose)
        # Offline: stand-in models that refuse, a read-only journal, throwaway memory.
        rlm = build_rlm(run.settings, settings, on_event=progress, memory={}, offline=True)
        context = run_context(store, run, scratch)

        async def replay() -> RunResult:
            try:
                journal = StoreJournal(store, run.run_id, read_only=True)
                return await rlm.arun(run.question, context, run_id=run.run_id, journal=journal)
            finally:
                await rlm.aclose()

        with progress:
            result = asyncio.run(replay())
    print_result(result, args.json)
    return 1 if result.stop_reason == "error" else 0
