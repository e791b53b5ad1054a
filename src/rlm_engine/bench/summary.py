"""``summary.json`` and ``summary.md``: score, cost, tokens, time and failures per suite."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from rlm_engine.bench.results import TaskResult
from rlm_engine.bench.sizes import format_size

ORACLE_NOTE = (
    "Model sim/oracle: the simulator's oracle answers from the generators' ground truth, so "
    "these scores measure the engine and harness, not any model."
)


def metrics(results: Sequence[TaskResult]) -> dict[str, Any]:
    """Aggregate figures of some results; cost is ``None`` if any task's price is unknown."""
    costs = [r.cost_usd for r in results]
    known = [c for c in costs if c is not None]
    count = len(results)
    return {
        "score": round(sum(r.score for r in results) / count, 4) if count else None,
        "tasks": count,
        "failures": sum(1 for r in results if r.failed),
        "context_overflows": sum(1 for r in results if r.status == "context_overflow"),
        "cost_usd": round(sum(known), 6) if count and len(known) == count else None,
        "cost_known_usd": round(sum(known), 6),
        "input_tokens": sum(r.input_tokens for r in results),
        "output_tokens": sum(r.output_tokens for r in results),
        "mean_time_s": round(sum(r.duration_s for r in results) / count, 3) if count else None,
        "total_time_s": round(sum(r.duration_s for r in results), 3),
        "sub_calls": sum(r.sub_calls for r in results),
    }


def summarize(results: Iterable[TaskResult], header: dict[str, Any]) -> dict[str, Any]:
    """``header`` (the run's settings) plus ``suites[suite][method]`` metrics, each with a
    ``by_size`` breakdown keyed like ``16k``."""
    groups: dict[str, dict[str, dict[int, list[TaskResult]]]] = {}
    for result in results:
        by_method = groups.setdefault(result.suite, {})
        by_method.setdefault(result.method, {}).setdefault(result.size_tokens, []).append(result)
    suites: dict[str, Any] = {}
    for suite, by_method in groups.items():
        suites[suite] = {}
        for method, by_size in by_method.items():
            every = [r for size in sorted(by_size) for r in by_size[size]]
            entry = metrics(every)
            entry["by_size"] = {
                format_size(size): metrics(by_size[size]) for size in sorted(by_size)
            }
            suites[suite][method] = entry
    return {**header, "suites": suites}


def _cell(value: object) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4g}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def render_markdown(summary: dict[str, Any]) -> str:
    """A human-readable table of the summary."""
    lines = [
        "# Benchmark summary",
        "",
        f"Model `{summary.get('model')}`, sub-model `{summary.get('sub_model')}`, "
        f"seed {summary.get('seed')}, {summary.get('tasks_per_size')} tasks per suite and size.",
    ]
    if summary.get("note"):
        lines += ["", str(summary["note"])]
    lines += [
        "",
        "| suite | method | size | score | tasks | failures | overflows | cost USD "
        "| input tokens | output tokens | mean s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for suite, by_method in summary["suites"].items():
        for method, entry in by_method.items():
            rows = [("all", entry), *entry["by_size"].items()]
            for size, m in rows:
                cells = [
                    suite,
                    method,
                    size,
                    *(
                        _cell(m[k])
                        for k in (
                            "score",
                            "tasks",
                            "failures",
                            "context_overflows",
                            "cost_usd",
                            "input_tokens",
                            "output_tokens",
                            "mean_time_s",
                        )
                    ),
                ]
                lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_summary(out: Path, summary: dict[str, Any]) -> None:
    """Write ``summary.json`` and ``summary.md`` into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    (out / "summary.md").write_text(render_markdown(summary), encoding="utf-8")
