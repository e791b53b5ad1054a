"""Engine overhead per iteration with a zero-latency model: ours vs the ideal vs the peers.

A scripted root model answers instantly: N turns that each write one trivial cell
(`print(i)`), then a turn that finishes. Whatever time the run takes is the engine's own:
prompt building, reply parsing, plugins, events, the REPL round trip and the history.
The ideal is zero. Per-iteration cost = the time between one root call and the next (the
fake models timestamp each call), median over all iterations of several runs; cross-checked
with (T(N) - T(1)) / (N - 1) from whole-run medians.

The peers run the same loop in their own virtual environments with an in-process fake model
(`rlms`: a `BaseLM` subclass patched in for `get_client`; `dspy.RLM`: `dspy.utils.DummyLM`),
so no HTTP is involved for anyone:

    uv venv /tmp/peers/rlms --python 3.11
    uv pip install --python /tmp/peers/rlms/bin/python rlms
    uv venv /tmp/peers/dspy --python 3.11
    uv pip install --python /tmp/peers/dspy/bin/python dspy deno
    uv run python benchmarks/engine_overhead.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

from rlm_engine import RLM
from rlm_engine.lm.scripted import ScriptedModel
from rlm_engine.types import Message

SIZES = (1, 101)
REPS = 7
RESULTS = Path(__file__).parent / "results" / "engine_overhead.md"
RLMS_PYTHON = os.environ.get("PEER_RLMS_PYTHON", "/tmp/peers/rlms/bin/python")
DSPY_PYTHON = os.environ.get("PEER_DSPY_PYTHON", "/tmp/peers/dspy/bin/python")

# Each driver: argv = sizes (comma separated), reps; prints one JSON line
# {"versions": ..., "times": {"N": [seconds, ...]}} after a warm-up run.
RLMS_DRIVER = """
import json, sys, time, importlib.metadata as md
import rlm.core.rlm as core
from rlm import RLM
from rlm.clients.base_lm import BaseLM
from rlm.core.types import ModelUsageSummary, UsageSummary

STEPS = 0
STAMPS = []

class FakeLM(BaseLM):
    def __init__(self, model_name="fake", **kwargs):
        super().__init__(model_name=model_name)
        self.calls = 0

    def _reply(self, prompt):
        STAMPS.append(time.perf_counter())
        self.calls += 1
        turns = sum(1 for m in prompt if isinstance(m, dict) and m.get("role") == "assistant")
        if turns < STEPS:
            return f"```repl\\nprint({turns})\\n```"
        return '```repl\\nanswer["content"] = "done"\\nanswer["ready"] = True\\n```'

    def completion(self, prompt):
        return self._reply(prompt)

    async def acompletion(self, prompt):
        return self._reply(prompt)

    def get_usage_summary(self):
        return UsageSummary({"fake": ModelUsageSummary(self.calls, 0, 0)})

    def get_last_usage(self):
        return ModelUsageSummary(1, 0, 0)

core.get_client = lambda backend, kwargs: FakeLM(**kwargs)

def once(steps):
    global STEPS
    STEPS = steps
    STAMPS.clear()
    rlm = RLM(backend="openai", backend_kwargs={"model_name": "fake"},
              max_iterations=steps + 5)
    began = time.perf_counter()
    out = rlm.completion("overhead benchmark context", root_prompt="count")
    elapsed = time.perf_counter() - began
    assert out.response == "done", out.response
    gaps = [b - a for a, b in zip(STAMPS, STAMPS[1:])]
    return elapsed, gaps, STAMPS[0] - began, began + elapsed - STAMPS[-1]

sizes = [int(s) for s in sys.argv[1].split(",")]
once(3)
runs = {str(n): [once(n) for _ in range(int(sys.argv[2]))] for n in sizes}
print(json.dumps({"version": md.version("rlms"), "runs": runs}))
"""

DSPY_DRIVER = """
import json, sys, time, importlib.metadata as md
import dspy
from dspy.utils.dummies import DummyLM
from dspy.primitives.local_interpreter import LocalInterpreter

STAMPS = []

class StampedLM(DummyLM):
    def forward(self, prompt=None, messages=None, **kwargs):
        STAMPS.append(time.perf_counter())
        return super().forward(prompt=prompt, messages=messages, **kwargs)

def once(steps):
    STAMPS.clear()
    answers = [{"reasoning": "next", "code": f"```python\\nprint({i})\\n```"}
               for i in range(steps)]
    answers.append({"reasoning": "done", "code": "```python\\nSUBMIT(answer='done')\\n```"})
    dspy.configure(lm=StampedLM(answers))
    rlm = dspy.RLM("context, query -> answer", max_iters=steps + 5,
                   interpreter_factory=LocalInterpreter)
    began = time.perf_counter()
    out = rlm(context="overhead benchmark context", query="count")
    elapsed = time.perf_counter() - began
    assert out.answer == "done", out
    gaps = [b - a for a, b in zip(STAMPS, STAMPS[1:])]
    return elapsed, gaps, STAMPS[0] - began, began + elapsed - STAMPS[-1]

sizes = [int(s) for s in sys.argv[1].split(",")]
once(3)
runs = {str(n): [once(n) for _ in range(int(sys.argv[2]))] for n in sizes}
print(json.dumps({"version": md.version("dspy"), "runs": runs}))
"""


# (run time, gaps between consecutive root calls, start to first call, last call to return)
Run = tuple[float, list[float], float, float]


def ours_once(steps: int, isolation: Literal["auto", "none"]) -> Run:
    stamps: list[float] = []

    def root(messages: Sequence[Message]) -> str:
        stamps.append(time.perf_counter())
        turn = sum(m.role == "assistant" for m in messages)
        return f"```repl\nprint({turn})\n```" if turn < steps else "FINAL(done)"

    with RLM(ScriptedModel(root), isolation=isolation, max_iterations=steps + 5) as rlm:
        began = time.perf_counter()
        result = rlm.run("count", "overhead benchmark context")
        ended = time.perf_counter()
    assert result.stop_reason == "final" and result.answer == "done", result
    assert result.iterations == steps + 1, result.iterations
    gaps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    return ended - began, gaps, stamps[0] - began, ended - stamps[-1]


def ours(sizes: Sequence[int], reps: int, isolation: Literal["auto", "none"]) -> dict[str, list]:
    ours_once(3, isolation)  # warm-up: imports, first sandbox
    return {str(n): [ours_once(n, isolation) for _ in range(reps)] for n in sizes}


def peer(python: str, driver: str, sizes: Sequence[int], reps: int) -> tuple[str, dict]:
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as handle:
        handle.write(driver)
    try:
        done = subprocess.run(
            [python, handle.name, ",".join(map(str, sizes)), str(reps)],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
            cwd=tempfile.gettempdir(),
        )
    finally:
        os.unlink(handle.name)
    if done.returncode != 0:
        last = [line for line in done.stderr.splitlines() if line.strip()][-3:]
        raise RuntimeError(f"exit {done.returncode}: {' / '.join(last)}")
    data = json.loads(done.stdout.strip().splitlines()[-1])
    return data["version"], data["runs"]


def summarise(runs: dict[str, list[Run]], sizes: Sequence[int]) -> dict[str, float]:
    first, top = sizes
    fixed = statistics.median(run[0] for run in runs[str(first)])
    total = statistics.median(run[0] for run in runs[str(top)])
    gaps = sorted(g for run in runs[str(top)] for g in run[1])
    every = [*runs[str(first)], *runs[str(top)]]
    return {
        "pre_ms": statistics.median(run[2] for run in every) * 1000,
        "post_ms": statistics.median(run[3] for run in every) * 1000,
        "fixed_ms": fixed * 1000,
        "gap_ms": statistics.median(gaps) * 1000,
        "gap_p90_ms": gaps[int(len(gaps) * 0.9)] * 1000,
        "slope_ms": (total - fixed) / (top - first) * 1000,
        "total_s": total,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=REPS)
    args = parser.parse_args()
    sizes = SIZES
    engines: list[tuple[str, Callable[[], tuple[str, dict]]]] = [
        (
            "rlm-engine (default: bubblewrap sandbox, default plugins)",
            lambda: ("", ours(sizes, args.reps, "auto")),
        ),
        ('rlm-engine, `isolation="none"`', lambda: ("", ours(sizes, args.reps, "none"))),
        (
            "rlms {v} (local in-process REPL, default)",
            lambda: peer(RLMS_PYTHON, RLMS_DRIVER, sizes, args.reps),
        ),
        (
            "dspy.RLM {v} (LocalInterpreter, see notes)",
            lambda: peer(DSPY_PYTHON, DSPY_DRIVER, sizes, args.reps),
        ),
    ]
    rows: list[str] = []
    notes: list[str] = []
    base: float | None = None
    for label, measure in engines:
        try:
            version, runs = measure()
        except Exception as exc:  # a peer that cannot run is reported, not faked
            name = label.format(v="")
            notes.append(f"- {name}: could not run: {type(exc).__name__}: {exc}")
            rows.append(f"| {name} | failed (see notes) | | | | | | |")
            continue
        s = summarise(runs, sizes)
        base = base if base is not None else s["gap_ms"]
        rows.append(
            f"| {label.format(v=version)} | {s['gap_ms']:.3f} ({s['gap_p90_ms']:.3f}) "
            f"| {s['gap_ms'] / base:.2f}x | {s['slope_ms']:.2f} | {s['pre_ms']:.1f} "
            f"| {s['post_ms']:.1f} | {s['fixed_ms']:.1f} | {s['total_s']:.3f} |"
        )
        print(rows[-1], flush=True)
    write(rows, notes, sizes, args.reps)


def write(rows: list[str], notes: list[str], sizes: Sequence[int], reps: int) -> None:
    first, top = sizes
    table = "\n".join(
        [
            "| engine | per iteration: median gap between root calls, ms (p90) | vs ours "
            f"| per iteration from run times, (T({top}) - T({first})) / {top - first}, ms "
            "| start to first root call, ms | last root call to return, ms "
            f"| T({first}), ms | T({top}), s |",
            "|---|---|---|---|---|---|---|---|",
            *rows,
        ]
    )
    command = "uv run python benchmarks/engine_overhead.py"
    if reps != REPS:
        command += f" --reps {reps}"
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        "# Engine overhead per iteration (zero-latency model)\n\n"
        f"Command: `{command}` ({time.strftime('%Y-%m-%d')}, {platform.platform()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}; load average over the "
        f"last 5 minutes when the run ended: {os.getloadavg()[1]:.1f})\n\n"
        "A scripted root model replies instantly: N turns each writing one `print(i)` cell, "
        'then a turn that finishes (`FINAL(done)` for ours, `answer["ready"] = True` for '
        "rlms, `SUBMIT(answer='done')` for dspy.RLM). The ideal is 0 ms per iteration; every "
        "millisecond shown is engine work (prompt building, parsing, plugins, events, the REPL "
        "round trip, history). Main figure: the time between one root call and the next "
        "(reply parsed, cell run, output handled, next prompt built), median (p90) over every "
        f"iteration of {reps} runs of N = {top}, after a warm-up run; it does not depend on "
        "fixed costs, so it stays readable on a loaded machine. Cross-check from whole-run "
        f"times: (T({top}) - T({first})) / {top - first} from medians; T({first}) is a run "
        "with one cell and the "
        "finishing turn (start-up, sandbox start, two model calls). Fixed costs are split "
        "into start to the first root call (sandbox start, context load, first prompt) and "
        "last root call to the run's return (final answer, sandbox shutdown), medians over "
        "all runs. The peers run in their "
        "own virtual environments with in-process fake models (rlms: a `BaseLM` patched in for "
        "`get_client`; dspy.RLM: `dspy.utils.DummyLM`, which still goes through DSPy's chat "
        "adapter formatting and parsing, as a real model would). Our runs go through "
        "`RLM.run` with a `ScriptedModel`.\n\n"
        "What each REPL is: ours is a separate worker process (bubblewrap-isolated by "
        "default) reached over a framed pipe; rlms's default `LocalREPL` is `exec` in the "
        "host process (no isolation); dspy.RLM runs with its `LocalInterpreter` (a local "
        "subprocess, no isolation) because its default Deno + Pyodide interpreter cannot "
        "start on this machine (Deno fetches `https://deno.land/std@0.186.0/io/mod.ts` at "
        "start and there is no DNS for deno.land; see `sandbox_vs_peers.md` for the default "
        "interpreter's own cost measured with that one import replaced).\n\n"
        "Reading the rows: rlms's per-iteration cost is tiny because its REPL is `exec` in "
        "the host process (no process boundary, no isolation), while ours includes a round "
        "trip to the worker process (about 0.2 ms a cell, see `sandbox_vs_peers.md`), the "
        "plugin chain and the event stream. rlms's T(1) of about 0.5 s is a fixed cost per "
        "completion: its LM handler's `socketserver` is stopped with `shutdown()`, which "
        "waits for `serve_forever`'s 0.5 s poll interval.\n\n"
        "The machine has 2 cores shared with other work running at the same time, so the "
        "whole-run figures (T, start, cross-check) move by tens of percent between runs and "
        "sometimes more; a negative cross-check means the per-iteration cost is smaller than "
        "that noise. The gap medians are stable to a few percent between runs.\n\n"
        f"{table}\n" + ("\n## Notes\n\n" + "\n".join(notes) + "\n" if notes else "")
    )


if __name__ == "__main__":
    main()
