"""Sub-call fan-out side by side: this engine vs the ideal vs `rlms` vs `dspy.RLM`.

Every engine runs against the same simulator process (`rlm sim serve --policy fanout
--ttft 0.1`): each request takes 100 ms; the root turn writes one cell that sends N
sub-calls through `llm_query_batched` and times them inside the REPL, then finishes in the
asking engine's own format. The figure is that in-cell time, the median of 3 runs interleaved
across engines. Ideal = ceil(N / concurrency) x 100 ms at the engine's sub-call concurrency.
Our headline rows are `rlm ask`, the journaled CLI users run (a fresh SQLite store under a
temporary RLM_HOME per run); `RLM(...).run` without a journal is shown beside it.

The peers live in their own virtual environments (never in this project's):

    uv venv /tmp/peers/rlms --python 3.11
    uv pip install --python /tmp/peers/rlms/bin/python rlms
    uv venv /tmp/peers/dspy --python 3.11
    uv pip install --python /tmp/peers/dspy/bin/python dspy deno
    uv run python benchmarks/fanout_vs_peers.py
"""

from __future__ import annotations

import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from sim_bench import fanout_seconds as parse
from sim_bench import rlm_ask, run_peer, sample, start_sim

from rlm_engine import RLM

LATENCY_S = 0.1
COUNTS = (256, 1024)
RUNS = 3
RESULTS = Path(__file__).parent / "results" / "fanout_vs_peers.md"
RLMS_PYTHON = os.environ.get("PEER_RLMS_PYTHON", "/tmp/peers/rlms/bin/python")
DSPY_PYTHON = os.environ.get("PEER_DSPY_PYTHON", "/tmp/peers/dspy/bin/python")

RLMS_DRIVER = """
import sys
from rlm import RLM
rlm = RLM(backend="openai", backend_kwargs={"model_name": "sim-model", "base_url": sys.argv[1],
          "api_key": "sim"}, max_iterations=3)
result = rlm.completion("fan-out benchmark context", root_prompt=f"FANOUT={sys.argv[2]}")
print("RESULT", result.response)
"""

DSPY_DRIVER = """
import sys
import dspy
lm = dspy.LM("openai/sim-model", api_base=sys.argv[1], api_key="sim", cache=False)
dspy.configure(lm=lm)
from dspy.primitives.local_interpreter import LocalInterpreter
# The default Deno + Pyodide interpreter imports modules from deno.land at start, which this
# machine cannot reach; the local subprocess interpreter uses the same sub-call path.
rlm = dspy.RLM("context, query -> answer", max_iters=3, max_llm_calls=5000,
               interpreter_factory=LocalInterpreter)
out = rlm(context="fan-out benchmark context", query=f"FANOUT={sys.argv[2]}")
print("RESULT", out.answer)
"""


def ours_cli(url: str, count: int, concurrency: int) -> float:
    """`rlm ask` as users run it: its own process, journaled in a fresh SQLite store."""
    flags = ("--max-concurrency", str(concurrency), "--max-iterations", "3")
    return parse(
        rlm_ask(url, f"FANOUT={count}", "fan-out benchmark context", *flags)["answer"], count
    )


def ours(url: str, count: int, concurrency: int) -> float:
    env = {"RLM_SIM_URL": url}
    with RLM("sim/sim-model", env=env, max_concurrency=concurrency, max_iterations=3) as rlm:
        result = rlm.run(f"FANOUT={count}", "fan-out benchmark context")
    return parse(result.answer, count)


def peer(python: str, driver: str, url: str, count: int) -> float:
    return parse(run_peer(python, driver, [url, str(count)], timeout=600), count)


def median(samples: list[float | str]) -> tuple[float | None, str]:
    errors = [s for s in samples if isinstance(s, str)]
    if errors:  # an engine that cannot run is reported, not faked
        return None, errors[0]
    return statistics.median(s for s in samples if not isinstance(s, str)), ""


def cell(value: float | None, ideal: float) -> str:
    return "failed (see notes)" if value is None else f"{value:.3f} ({value / ideal:.2f}x)"


def engines(url: str, count: int) -> list[tuple[str, int, Callable[[], float]]]:
    return [
        ("**`rlm ask`, journaled (SQLite), 64 wide**", 64, partial(ours_cli, url, count, 64)),
        ("`rlm ask`, journaled (SQLite), 32 wide (default)", 32, partial(ours_cli, url, count, 32)),
        ("`RLM(...).run`, no journal, 64 wide", 64, partial(ours, url, count, 64)),
        (
            "rlms 0.1.3 (batch semaphore 16, default, not settable)",
            16,
            partial(peer, RLMS_PYTHON, RLMS_DRIVER, url, count),
        ),
        (
            "dspy.RLM 3.4.1, LocalInterpreter (8 threads, default)",
            8,
            partial(peer, DSPY_PYTHON, DSPY_DRIVER, url, count),
        ),
    ]


def main() -> None:
    proc, url = start_sim("--ttft", str(LATENCY_S), "--policy", "fanout")
    rows: list[str] = []
    notes: list[str] = []
    try:
        ours(url, 16, 16)  # warm-up: imports and the first sandbox
        for count in COUNTS:
            table = engines(url, count)
            samples: list[list[float | str]] = [[] for _ in table]
            for _ in range(RUNS):  # interleaved, so drift on the machine hits every engine
                for i, (_, _, measure) in enumerate(table):
                    samples[i].append(sample(measure))
            for (name, concurrency, _), got in zip(table, samples, strict=True):
                ideal = math.ceil(count / concurrency) * LATENCY_S
                value, error = median(got)
                if error:
                    notes.append(f"- {name}, {count} sub-calls: {error}")
                rows.append(f"| {count} | {name} | {ideal:.2f} | {cell(value, ideal)} |")
                print(rows[-1], flush=True)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    write(rows, notes)


def write(rows: list[str], notes: list[str]) -> None:
    table = "\n".join(
        [
            "| sub-calls | engine (sub-call concurrency) | ideal s | measured s (ratio to ideal) |",
            "|---|---|---|---|",
            *rows,
        ]
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        "# Sub-call fan-out: rlm-engine vs rlms vs dspy.RLM\n\n"
        f"Command: `uv run python benchmarks/fanout_vs_peers.py` ({time.strftime('%Y-%m-%d')}, "
        f"{sys.platform}, {os.cpu_count()} cores)\n\n"
        "One simulator process (`rlm sim serve --policy fanout --ttft 0.1`) serves every "
        "engine; each request takes 100 ms. The root turn writes one REPL cell that sends N "
        "sub-calls with `llm_query_batched` and times them inside the cell; that time is "
        f"shown, the median of {RUNS} runs interleaved across engines. Our headline row is "
        "`rlm ask`, the journaled CLI (its own process, a fresh SQLite store per run); "
        "`RLM(...).run` without a journal is beside it. The peers run at their defaults; "
        "ideal = ceil(N / concurrency) x 100 ms. The peers run "
        "from their own virtual environments (see the script's docstring). dspy.RLM runs "
        "with its `LocalInterpreter`: its default Deno + Pyodide interpreter could not start "
        "here, because Deno fetches `https://deno.land/std@0.186.0/io/mod.ts` at start and "
        "this machine has no DNS for deno.land (PyPI and npm are reachable); the sub-call "
        "path (`llm_query_batched` on 8 threads) is the same with either interpreter. The "
        "machine has 2 cores shared with other work, so run-to-run spread is about 10-30%. "
        "Simulator replies measure the engines, not a model.\n\n"
        f"{table}\n" + ("\n## Notes\n\n" + "\n".join(notes) + "\n" if notes else "")
    )


if __name__ == "__main__":
    main()
