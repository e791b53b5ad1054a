"""``rlm ask``: answer a question over one or more context files.

The store opens in the background (`DeferredStore`): the run starts, and its first root
request goes out, while SQLAlchemy loads and the run is recorded; the run is recorded
before its first cell and before any journaled reply reaches a cell (`RunService.start`).
"""

from __future__ import annotations

import argparse
import threading
from typing import cast

from rlm_engine.cli.inputs import checked_contexts
from rlm_engine.cli.outcome import exit_code, print_result
from rlm_engine.cli.progress import Progress
from rlm_engine.cli.run_driver import run_in_service
from rlm_engine.cli.store_access import open_cli_store
from rlm_engine.service.contexts import context_paths
from rlm_engine.service.lifecycle import new_run_id
from rlm_engine.service.principal import Principal
from rlm_engine.service.runs import RunHandle, RunService
from rlm_engine.service.spec import RunSpec
from rlm_engine.settings import Settings
from rlm_engine.store.deferred import DeferredStore
from rlm_engine.store.protocol import Store


def spec_from_args(args: argparse.Namespace, settings: Settings) -> RunSpec:
    """What is stored with the run and rebuilds the same RLM on resume."""
    model = args.model or settings.model
    if not model:  # probing for local servers needs http.client: only without a model
        from rlm_engine.cli.discover import discover_model

        model = discover_model(settings.env)
    return RunSpec.from_json(
        {
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
            "tools": list(args.tool),
            "isolation": args.isolation,
        }
    )


def run_ask(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    args.context = checked_contexts(args.context, args.binary, args.encoding, settings.home)
    spec = spec_from_args(args, settings)
    deferred = DeferredStore(lambda: open_cli_store(settings))
    try:
        store = cast(Store, deferred)
        run_id = new_run_id()
        progress = Progress(verbose=args.verbose)
        warming: threading.Thread | None = getattr(args, "warming", None)
        if warming is not None:
            warming.join()  # what it finds, building the RLM would otherwise find itself

        async def start(service: RunService) -> RunHandle:
            return await service.start(
                Principal.local(),
                args.question,
                spec,
                session=args.session,
                run_id=run_id,
                on_event=progress,
            )

        result = run_in_service(store, settings, progress, run_id, start)
    finally:
        deferred.close()
    print_result(result, args.json)
    return exit_code(result)
