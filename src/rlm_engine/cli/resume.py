"""``rlm runs resume`` and ``rlm replay``: continue or re-run a recorded run from its journal."""

from __future__ import annotations

import argparse
import asyncio

from rlm_engine.cli.outcome import exit_code, print_result
from rlm_engine.cli.progress import Progress
from rlm_engine.cli.run_driver import run_in_service, warn
from rlm_engine.cli.store_access import UnknownRunError, cli_store, require_run
from rlm_engine.engine.result import RunResult
from rlm_engine.errors import ConfigurationError
from rlm_engine.service.principal import Principal
from rlm_engine.service.runs import RunHandle, RunService
from rlm_engine.settings import Settings
from rlm_engine.store.errors import RunNotFoundError, RunNotResumableError
from rlm_engine.store.run_rules import resume_refusal


def run_resume(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    run_id: str = args.run_id
    with cli_store(settings) as store:
        run = require_run(store, run_id)  # before the live line: a wrong id is just an error
        refusal = resume_refusal(run_id, run.status, run.failure_kind)
        if refusal is not None:
            raise ConfigurationError(refusal[0], hint=refusal[1])
        progress = Progress(verbose=args.verbose)

        async def start(service: RunService) -> RunHandle:
            try:
                return await service.resume(
                    Principal.local(),
                    run_id,
                    accept_divergence=args.accept_divergence,
                    on_event=progress,
                )
            except RunNotFoundError as exc:
                raise UnknownRunError(run_id) from exc
            except RunNotResumableError as exc:  # what to do instead: a usage error
                raise ConfigurationError(str(exc), hint=exc.hint) from exc

        result = run_in_service(store, settings, progress, run_id, start)
    print_result(result, args.json)
    return exit_code(result)


def run_replay(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    with cli_store(settings) as store:
        require_run(store, args.run_id)
        progress = Progress(verbose=args.verbose)

        async def replay() -> RunResult:
            service = RunService(store, settings, warn=warn)
            try:
                return await service.replay(Principal.local(), args.run_id, on_event=progress)
            except RunNotFoundError as exc:
                raise UnknownRunError(args.run_id) from exc

        with progress:
            result = asyncio.run(replay())
    print_result(result, args.json)
    return exit_code(result)
