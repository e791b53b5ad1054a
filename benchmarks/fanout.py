"""Sub-call fan-out: N `llm_query_batched` calls against a server that takes 100 ms a call.

The simulator runs in its own process (`rlm sim serve`) so the engine and the server do
not share an interpreter. The root model is scripted (zero latency) so the figure is the
batch alone, timed inside the REPL cell. Ideal = ceil(N / concurrency) * latency.

    uv run python benchmarks/fanout.py
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from rlm_engine import RLM
from rlm_engine.lm.scripted import ScriptedModel
from rlm_engine.types import Message

LATENCY_S = 0.1
CASES = [(256, 64), (256, 32), (1024, 64), (1024, 256)]
TRANSPORTS = ("direct", "sdk")
RESULTS = Path(__file__).parent / "results" / "fanout.md"


def start_sim() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rlm_engine.cli.main",
            "sim",
            "serve",
            "--port",
            "0",
            "--ttft",
            str(LATENCY_S),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"(http://\S+)", line)
    if match is None:
        proc.kill()
        raise RuntimeError(f"simulator did not start: {line!r}")
    return proc, match.group(1)


def run_case(base_url: str, n: int, concurrency: int, transport: str = "direct") -> float:
    code = (
        "import time\nt0 = time.perf_counter()\n"
        f"out = llm_query_batched([f'question {{i}}' for i in range({n})])\n"
        "elapsed = time.perf_counter() - t0\n"
        "errors = sum(a.startswith('[error') for a in out)\n"
        "print('elapsed', elapsed, 'answers', len(out), 'errors', errors)"
    )
    replies = [f"```repl\n{code}\n```", "FINAL(done)"]

    def root(messages: Sequence[Message]) -> str:
        return replies[min(sum(m.role == "assistant" for m in messages), 1)]

    captured: list[str] = []
    env = {"OPENAI_BASE_URL": base_url, "OPENAI_API_KEY": "sim", "RLM_OPENAI_TRANSPORT": transport}
    with RLM(
        ScriptedModel(root),
        "openai/sim-model",
        env=env,
        max_concurrency=concurrency,
        on_event=lambda e: captured.append(e.output) if e.type == "cell_finished" else None,
    ) as rlm:
        result = rlm.run("fan out")
    assert result.stop_reason == "final", result
    match = re.search(r"elapsed ([0-9.]+) answers (\d+) errors (\d+)", captured[0])
    assert match is not None, captured[0]
    assert int(match.group(2)) == n and int(match.group(3)) == 0, captured[0]
    return float(match.group(1))


def main() -> None:
    proc, url = start_sim()
    rows: list[str] = []
    load_before = os.getloadavg()[0]
    try:
        run_case(url, 16, 16)  # warm-up: imports
        for n, conc in CASES:
            ideal = math.ceil(n / conc) * LATENCY_S
            cells = [f"| {n} | {conc} | {ideal:.2f} |"]
            for transport in TRANSPORTS:
                best = min(run_case(url, n, conc, transport) for _ in range(3))
                cells.append(f" {best:.3f} ({best / ideal:.2f}x) |")
            rows.append("".join(cells))
            print(rows[-1], flush=True)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    table = "\n".join(
        [
            "| sub-calls | max_concurrency | ideal s | direct HTTP (default): s, ratio "
            "| SDK path: s, ratio |",
            "|---|---|---|---|---|",
            *rows,
        ]
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        "# Sub-call fan-out\n\n"
        f"Command: `uv run python benchmarks/fanout.py` ({time.strftime('%Y-%m-%d')}, "
        f"{sys.platform}, {os.cpu_count()} cores; 1-minute load average {load_before:.1f} "
        f"before the runs, {os.getloadavg()[0]:.1f} after: the machine is shared, so "
        "figures move with the load)\n\n"
        f"Each sub-call takes {LATENCY_S * 1000:.0f} ms at the simulator (a separate process, "
        "`rlm sim serve`); the root model is scripted. The time is the `llm_query_batched` call "
        "measured inside the REPL cell, through the OpenAI adapter, the broker and the "
        "worker protocol. Ideal = ceil(calls / concurrency) x latency. Best of 3 runs; "
        "each run opens its connections anew. The two columns are the OpenAI adapter's two "
        "transports (`RLM_OPENAI_TRANSPORT=direct`, the default, and `sdk`).\n\n"
        f"{table}\n"
    )


if __name__ == "__main__":
    main()
