"""``rlm ask``: answer a question over one or more context files."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from rlm_engine.cli.discover import discover_model
from rlm_engine.cli.progress import Progress
from rlm_engine.cli.run_setup import (
    StoreEventSink,
    build_rlm,
    context_of,
    context_paths,
    context_scratch,
    listeners,
    memory_for,
    new_run_id,
    open_run,
    run_and_record,
    run_context,
)
from rlm_engine.cli.store_access import cli_store
from rlm_engine.engine.journal_store import StoreJournal
from rlm_engine.engine.result import RunResult
from rlm_engine.engine.rlm import RLM
from rlm_engine.errors import RLMError
from rlm_engine.sandbox.base import ContextValue
from rlm_engine.settings import Settings
from rlm_engine.store.protocol import Store
from rlm_engine.store.records import Run


def print_result(result: RunResult, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result.to_dict(), ensure_ascii=False, default=str))
        return
    print(result.answer)
    cost = "unknown" if result.cost_usd is None else f"${result.cost_usd:.4f}"
    print(
        f"\n[{result.stop_reason} after {result.iterations} iterations, "
        f"{result.usage.total_tokens:,} tokens, {result.sub_calls} sub-calls, cost {cost}, "
        f"{result.duration_s:.1f}s, run {result.run_id}]",
        file=sys.stderr,
    )


def run_settings_from_args(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    """What is stored with the run and rebuilds the same RLM on resume."""
    model = args.model or settings.model or discover_model(settings.env)
    return {
        "model": model,
        "sub_model": args.sub_model or settings.sub_model or model,
        "fallback_models": list(args.fallback_model),
        "context": context_paths(args.context),
        "max_iterations": args.max_iterations,
        "max_depth": args.max_depth,
        "max_concurrency": args.max_concurrency,
        "max_sub_calls": args.max_sub_calls,
        "max_cost_usd": args.budget_usd,
        "max_seconds": args.max_seconds,
        "cell_timeout_s": args.cell_timeout,
        "output_mode": args.output_mode,
        "sub_temperature": args.sub_temperature,
        "response_cache": args.response_cache,
        "instructions": args.instructions or settings.instructions,
        "plugins": [*settings.plugins, *args.plugin],
        "no_default_plugins": args.no_default_plugins,
        "isolation": args.isolation,
    }


def session_runs(store: Store, session: str | None) -> list[Run]:
    """The finished runs of a session, oldest first: replaying them restores its REPL."""
    if session is None:
        return []
    store.open_session(session)
    runs = store.list_runs(limit=10_000, session=session)
    return [r for r in reversed(runs) if r.status == "completed"]


async def replay_session(rlm: RLM, store: Store, prior: list[tuple[Run, ContextValue]]) -> None:
    for run, context in prior:
        journal = StoreJournal(store, run.run_id, read_only=True)
        replayed = await rlm.arun(run.question, context, run_id=run.run_id, journal=journal)
        if replayed.stop_reason == "error":
            raise RLMError(
                f"could not restore the session from run {run.run_id}: {replayed.stop_detail}"
            )


def run_ask(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    with cli_store(settings) as store, context_scratch() as scratch:
        prior = session_runs(store, args.session)
        if prior and not args.model:
            # A session continues with the models its REPL state was built with.
            args.model = args.model or prior[-1].settings.get("model")
            args.sub_model = args.sub_model or prior[-1].settings.get("sub_model")
        run_settings = run_settings_from_args(args, settings)
        run_id = new_run_id()
        sink = StoreEventSink(store)
        progress = Progress(verbose=args.verbose)
        rlm = build_rlm(
            run_settings,
            settings,
            on_event=listeners(run_id, sink, progress),
            memory=memory_for(store, args.session),
            persistent=bool(args.session),
            store=store,
        )
        contexts = [(run, run_context(store, run, scratch)) for run in prior]
        pin = open_run(store, run_id, args.question, run_settings, args.session)
        result = run_and_record(
            rlm,
            store,
            sink,
            progress,
            run_id=run_id,
            question=args.question,
            context=context_of(run_settings),
            journal=StoreJournal(store, run_id),
            pin=pin,
            before=lambda: replay_session(rlm, store, contexts),
        )
    print_result(result, args.json)
    return 1 if result.stop_reason == "error" else 0
