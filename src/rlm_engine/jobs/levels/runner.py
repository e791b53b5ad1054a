"""Running one level through the run service, exactly as ``rlm ask`` runs a question.

The spec comes from ``rlm ask``'s own flags (`spec_from_args`); the level adds its data as
the run's context, its schema for typed answers, and the depth it needs. On the simulator
the level's ground truth is registered with the oracle first, in this process, where the
in-process simulator answers from it.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlm_engine.jobs.levels.base import Level, Prepared, register
from rlm_engine.settings import Settings
from rlm_engine.store.protocol import Store


@dataclass(frozen=True, slots=True)
class LevelOutcome:
    """What one level's run gave and whether its check passed."""

    number: int
    name: str
    passed: bool
    answer: str
    expected: str
    reason: str = ""
    stop_reason: str = ""
    run_id: str = ""
    fields: Mapping[str, Any] | None = None
    iterations: int = 0
    sub_calls: int = 0
    duration_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "level": self.number,
            "name": self.name,
            "passed": self.passed,
            "answer": self.answer,
            "fields": dict(self.fields) if self.fields is not None else None,
            "expected": self.expected,
            "reason": self.reason,
            "stop_reason": self.stop_reason,
            "run_id": self.run_id,
            "iterations": self.iterations,
            "sub_calls": self.sub_calls,
            "duration_s": round(self.duration_s, 3),
        }


def prepare(level: Level, data_dir: Path, seed: int) -> Prepared:
    """Build ``level``'s data under ``data_dir`` and tell the oracle about it."""
    from rlm_engine.sim.oracle_registry import default_registry

    prepared = level.build(data_dir, seed)
    register(prepared, default_registry())
    return prepared


def run_level(
    level: Level,
    args: argparse.Namespace,
    settings: Settings,
    store: Store,
    *,
    data_dir: Path,
    seed: int,
    artifacts: str | None = None,
) -> LevelOutcome:
    """Build, run and check one level; a run that ends without an answer fails it.
    ``artifacts``: the lakehouse root whose registry the run's cells go through (each run
    by an ``rlm-executor`` process), or None for the run's own REPL."""
    from rlm_engine.cli.ask import spec_from_args
    from rlm_engine.cli.progress import Progress
    from rlm_engine.cli.run_driver import run_in_service
    from rlm_engine.service.lifecycle import new_run_id
    from rlm_engine.service.principal import Principal
    from rlm_engine.service.runs import RunHandle, RunService

    prepared = prepare(level, data_dir, seed)
    base = spec_from_args(args, settings)
    spec = dataclasses.replace(
        base,
        context=tuple(str(p.resolve()) for p in prepared.contexts),
        max_depth=max(base.max_depth or 1, prepared.min_depth),
        output_schema=dict(prepared.output_schema) if prepared.output_schema else None,
        artifacts=artifacts,
    )
    question = prepared.question_for(spec.model)
    run_id = new_run_id()
    progress = Progress(verbose=bool(args.verbose))

    async def start(service: RunService) -> RunHandle:
        return await service.start(
            Principal.local(), question, spec, run_id=run_id, on_event=progress
        )

    started = time.monotonic()
    result = run_in_service(store, settings, progress, run_id, start)
    answered = result.stop_reason in ("final", "submitted")
    verdict = prepared.check(result.answer, result.fields)
    reason = verdict.reason
    if not answered:
        reason = f"the run stopped without an answer ({result.stop_reason}: {result.stop_detail})"
    return LevelOutcome(
        number=level.number,
        name=level.name,
        passed=answered and verdict.passed,
        answer=result.answer,
        expected=prepared.expected,
        reason=reason,
        stop_reason=result.stop_reason,
        run_id=result.run_id,
        fields=result.fields,
        iterations=result.iterations,
        sub_calls=result.sub_calls,
        duration_s=time.monotonic() - started,
    )
