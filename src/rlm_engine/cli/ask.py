"""``rlm ask``: answer a question over one or more context files."""

from __future__ import annotations

import argparse
from typing import Any

from rlm_engine.cli.discover import discover_model
from rlm_engine.cli.inputs import checked_contexts
from rlm_engine.cli.outcome import exit_code, print_result
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
)
from rlm_engine.cli.session_restore import RESTORED_FROM, past_runs, restorer, session_runs
from rlm_engine.cli.store_access import cli_store
from rlm_engine.engine.journal_store import StoreJournal
from rlm_engine.settings import Settings


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
        "max_children": args.max_children,
        "max_concurrency": args.max_concurrency,
        "max_sub_calls": args.max_sub_calls,
        "max_prompt_bytes": args.max_prompt_bytes,
        "sub_context_tokens": args.sub_context_tokens,
        "max_answer_bytes": args.max_answer_bytes,
        "max_cost_usd": args.budget_usd,
        "max_seconds": args.max_seconds,
        "cell_timeout_s": args.cell_timeout,
        "memory_mb": args.memory_mb,
        "request_timeout_s": args.request_timeout,
        "output_mode": args.output_mode,
        "max_tokens": args.max_tokens,
        "max_output_chars": args.max_output_chars,
        "temperature": args.temperature,
        "max_output_tokens": args.max_output_tokens,
        "sub_temperature": args.sub_temperature,
        "sub_max_output_tokens": args.sub_max_output_tokens,
        "base_url": args.base_url,
        "api_key_env": args.api_key_env,  # the variable's name: the key is never stored
        "binary": args.binary,
        "encoding": args.encoding,
        "response_cache": args.response_cache,
        "instructions": args.instructions or settings.instructions,
        "plugins": [*settings.plugins, *args.plugin],
        "no_default_plugins": args.no_default_plugins,
        "isolation": args.isolation,
    }


def run_ask(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    args.context = checked_contexts(args.context, args.binary, args.encoding, settings.home)
    with cli_store(settings) as store, context_scratch() as scratch:
        prior = session_runs(store, args.session)
        run_settings = run_settings_from_args(args, settings)
        if prior:  # a resume restores the REPL from the same runs
            run_settings[RESTORED_FROM] = [run.run_id for run in prior]
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
        past = past_runs(store, prior, scratch)
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
            before=restorer(rlm, past),
        )
    print_result(result, args.json)
    return exit_code(result)
