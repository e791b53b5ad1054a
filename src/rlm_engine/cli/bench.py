"""``rlm bench``: run the offline benchmark suites against any model."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

from rlm_engine.errors import ConfigurationError


def list_command(args: argparse.Namespace) -> int:
    from rlm_engine.bench.suites import SUITES

    for suite in SUITES.values():
        print(f"{suite.name:14} {suite.description}")
    return 0


def _config(args: argparse.Namespace) -> Any:
    from rlm_engine.bench.runner import BenchConfig
    from rlm_engine.settings import Settings

    settings = Settings.from_env()
    model = args.model or settings.model
    if not model:
        raise ConfigurationError("no model: pass --model provider/model or set RLM_MODEL")
    if args.concurrency < 1 or args.tasks < 1:
        raise ConfigurationError("--concurrency and --tasks must be at least 1")
    methods = ("rlm", "direct") if args.method == "both" else (args.method,)
    return BenchConfig(
        model=model,
        sub_model=args.sub_model or settings.sub_model,
        methods=methods,
        concurrency=args.concurrency,
        max_iterations=args.max_iterations,
        env=settings.env,
    )


def run_command(args: argparse.Namespace) -> int:
    from rlm_engine.bench.plots import write_plots
    from rlm_engine.bench.progress import BenchProgress
    from rlm_engine.bench.results import ResultsFile, load_results
    from rlm_engine.bench.runner import plan, run_bench
    from rlm_engine.bench.sizes import format_size, parse_sizes
    from rlm_engine.bench.suites import parse_suites
    from rlm_engine.bench.summary import ORACLE_NOTE, summarize, write_summary
    from rlm_engine.bench.task import task_id

    config = _config(args)
    suites = parse_suites(args.suite)
    sizes = parse_sizes(args.sizes)
    items = plan(suites, sizes, args.tasks, args.seed)
    out = Path(args.out)
    results_file = ResultsFile(out / "results.jsonl")
    wanted = {
        (task_id(s.name, size, i, args.seed), m, config.model)
        for s, size, i in items
        for m in config.methods
    }
    done = len({r.key for r in load_results(results_file.path) if r.settled and r.key in wanted})
    if done:
        print(f"rlm bench: resuming, {done} of {len(wanted)} already in {results_file.path}")
    started = time.monotonic()
    with BenchProgress(len(wanted), done) as progress:
        results = asyncio.run(
            run_bench(items, config, results_file, seed=args.seed, on_result=progress)
        )
    current = {r.key: r for r in results if r.key in wanted}  # the latest line wins
    oracle = any(m and m.startswith("sim/oracle") for m in (config.model, config.sub_model))
    header = {
        "model": config.model,
        "sub_model": config.sub_model or config.model,
        "methods": list(config.methods),
        "sizes": [format_size(s) for s in sizes],
        "tasks_per_size": args.tasks,
        "seed": args.seed,
        "wall_time_s": round(time.monotonic() - started, 3),
        "note": ORACLE_NOTE if oracle else "",
    }
    summary = summarize(current.values(), header)
    write_summary(out, summary)
    plots = [] if args.no_plots else write_plots(out, summary)
    _report(summary, out, plots)
    return 0


def _report(summary: dict[str, Any], out: Path, plots: list[Path] | str) -> None:
    for suite, by_method in summary["suites"].items():
        for method, entry in by_method.items():
            cost = entry["cost_usd"]
            shown = f"${cost:.4f}" if cost is not None else "price unknown"
            print(
                f"{suite:14} {method:6} score {entry['score']:.3f}  tasks {entry['tasks']}  "
                f"failures {entry['failures']}  cost {shown}  "
                f"tokens {entry['input_tokens'] + entry['output_tokens']:,}"
            )
    if summary.get("note"):
        print(summary["note"])
    print(f"results: {out / 'results.jsonl'}; summary: {out / 'summary.json'}, summary.md")
    if isinstance(plots, str):
        print(plots, file=sys.stderr)
    elif plots:
        print("plots: " + ", ".join(str(p) for p in plots))
