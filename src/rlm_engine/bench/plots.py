"""PNG plots of score and cost against context length (matplotlib, the ``bench`` extra)."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from rlm_engine.bench.sizes import parse_size


def _series(summary: dict[str, Any], metric: str) -> dict[str, list[tuple[int, float]]]:
    series: dict[str, list[tuple[int, float]]] = {}
    for suite, by_method in summary["suites"].items():
        for method, entry in by_method.items():
            points: list[tuple[int, float]] = []
            for size, m in entry["by_size"].items():
                value = m.get(metric)
                if isinstance(value, int | float):
                    points.append((parse_size(size), float(value)))
            if points:
                series[f"{suite} ({method})"] = sorted(points)
    return series


def write_plots(out: Path, summary: dict[str, Any]) -> list[Path] | str:
    """Write ``score_vs_context.png`` and ``cost_vs_context.png``; returns their paths, or
    the reason no plot was drawn."""
    try:
        matplotlib = importlib.import_module("matplotlib")
        matplotlib.use("Agg")  # files only; never open a window
        # Typed as Any: matplotlib's stubs leave **kwargs unknown, which strict mode rejects.
        plt: Any = importlib.import_module("matplotlib.pyplot")
    except ImportError:
        return "plots skipped: matplotlib is not installed (pip install 'rlm-engine[bench]')"
    cost = _series(summary, "cost_usd")
    cost_label = "cost per suite and size (USD)"
    if not cost:  # unpriced models (simulator, local servers): show tokens instead
        cost = {
            name: [(x, y) for x, y in points]
            for name, points in _series(summary, "input_tokens").items()
        }
        cost_label = "input tokens (price unknown)"
    written: list[Path] = []
    for name, series, ylabel in (
        ("score_vs_context.png", _series(summary, "score"), "score"),
        ("cost_vs_context.png", cost, cost_label),
    ):
        figure, axes = plt.subplots(figsize=(7, 4.5))
        for label, points in series.items():
            axes.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label)
        axes.set_xscale("log", base=2)
        axes.set_xlabel("context length (tokens)")
        axes.set_ylabel(ylabel)
        axes.set_title(f"{ylabel} vs context length: {summary.get('model')}")
        if series:
            axes.legend(fontsize="small")
        axes.grid(True, alpha=0.3)
        figure.tight_layout()
        path = out / name
        figure.savefig(path, dpi=100)
        plt.close(figure)
        written.append(path)
    return written
