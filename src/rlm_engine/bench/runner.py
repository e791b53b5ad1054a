"""Runs benchmark tasks with the RLM or the direct baseline, concurrently, with resume."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from rlm_engine.bench.results import Method, ResultsFile, TaskResult, load_results
from rlm_engine.bench.suites import SUITES, Suite
from rlm_engine.bench.task import Task, direct_prompt, register_with_oracle, task_id
from rlm_engine.errors import ProviderError
from rlm_engine.sim.oracle_registry import default_registry
from rlm_engine.types import Message

OnResult = Callable[[TaskResult], None]


@dataclass(frozen=True, slots=True)
class BenchConfig:
    """What to run: models, methods and limits. ``env`` is where providers read settings."""

    model: str
    sub_model: str | None = None
    methods: tuple[Method, ...] = ("rlm",)
    concurrency: int = 4
    max_iterations: int = 30
    max_seconds: float | None = 1800.0
    env: Mapping[str, str] | None = None


def _blank(task: Task, config: BenchConfig, method: Method) -> TaskResult:
    """A failed result for ``task``; runners fill in what they learn."""
    return TaskResult(
        task_id=task.id,
        suite=task.suite,
        size_tokens=task.size_tokens,
        method=method,
        model=config.model,
        sub_model=config.sub_model or config.model,
        score=0.0,
        status="error",
        answer="",
        gold=task.answer,
    )


async def run_rlm(task: Task, config: BenchConfig) -> TaskResult:
    """Answer ``task`` with an RLM; the score is 0 unless the run ended with an answer."""
    from rlm_engine import RLM

    blank = _blank(task, config, "rlm")
    rlm = RLM(
        config.model,
        config.sub_model,
        env=config.env,
        max_iterations=config.max_iterations,
        max_seconds=config.max_seconds,
    )
    try:
        result = await rlm.arun(task.question, task.context)
    finally:
        await rlm.aclose()
    answered = result.stop_reason in ("final", "submitted")
    return replace(
        blank,
        score=SUITES[task.suite].score(result.answer, task.answer) if answered else 0.0,
        status="ok" if answered else result.stop_reason,
        answer=result.answer,
        input_tokens=result.usage.input_tokens,
        output_tokens=result.usage.output_tokens,
        cost_usd=result.cost_usd,
        duration_s=result.duration_s,
        iterations=result.iterations,
        sub_calls=result.sub_calls,
        error="" if answered else result.stop_detail,
    )


async def run_direct(task: Task, config: BenchConfig) -> TaskResult:
    """Send the whole context in one call; a prompt too long is reported as such."""
    from rlm_engine.lm.lifecycle import aclose_model
    from rlm_engine.lm.registry import build_model
    from rlm_engine.settings import Settings

    blank = _blank(task, config, "direct")
    env = config.env if config.env is not None else Settings.from_env().env
    model = build_model(config.model, env=env)
    started = time.monotonic()
    try:
        completion = await model.complete([Message("user", direct_prompt(task))])
    except ProviderError as exc:
        overflow = exc.kind == "context_length"
        return replace(
            blank,
            status="context_overflow" if overflow else "error",
            error=f"{exc.kind}: {exc}",
            duration_s=time.monotonic() - started,
        )
    finally:
        await aclose_model(model)
    return replace(
        blank,
        score=SUITES[task.suite].score(completion.text, task.answer),
        status="ok",
        answer=completion.text,
        input_tokens=completion.usage.input_tokens,
        output_tokens=completion.usage.output_tokens,
        cost_usd=completion.cost_usd,
        duration_s=time.monotonic() - started,
        iterations=1,
    )


async def run_task(task: Task, method: Method, config: BenchConfig) -> TaskResult:
    """Run one task with one method; any failure becomes a scored-zero ``error`` result
    so one broken task never stops a long benchmark run."""
    started = time.monotonic()
    try:
        return await _RUNNERS[method](task, config)
    except Exception as exc:
        return replace(
            _blank(task, config, method),
            error=f"{type(exc).__name__}: {exc}",
            duration_s=time.monotonic() - started,
        )


_RUNNERS = {"rlm": run_rlm, "direct": run_direct}


def plan(
    suites: Sequence[Suite], sizes: Sequence[int], count: int, seed: int
) -> list[tuple[Suite, int, int]]:
    """The ``(suite, size, index)`` of every task, in run order."""
    return [(s, size, i) for s in suites for size in sizes for i in range(count)]


async def run_bench(
    items: Iterable[tuple[Suite, int, int]],
    config: BenchConfig,
    results: ResultsFile,
    *,
    seed: int = 0,
    on_result: OnResult | None = None,
) -> list[TaskResult]:
    """Run every task and method not already settled in ``results`` (errors are retried);
    returns all results, old and new. Tasks are generated just before they run, so large
    sizes are not all in memory at once."""
    previous = load_results(results.path)
    done = {r.key for r in previous if r.settled}
    slots = asyncio.Semaphore(config.concurrency)
    registry = default_registry()
    fresh: list[TaskResult] = []

    async def one(suite: Suite, size: int, index: int, methods: list[Method]) -> None:
        async with slots:
            # Generating a 1m-token task takes about a second: keep it off the event loop.
            task = await asyncio.to_thread(suite.generate, size, index, seed)
            register_with_oracle(task, registry)
            for method in methods:
                result = await run_task(task, method, config)
                results.append(result)
                fresh.append(result)
                if on_result is not None:
                    on_result(result)

    jobs: list[asyncio.Task[None]] = []
    for suite, size, index in items:
        ident = task_id(suite.name, size, index, seed)
        methods: list[Method] = [m for m in config.methods if (ident, m, config.model) not in done]
        if methods:
            jobs.append(asyncio.create_task(one(suite, size, index, methods)))
    try:
        await asyncio.gather(*jobs)
    finally:
        for job in jobs:
            job.cancel()
    return [*previous, *fresh]
