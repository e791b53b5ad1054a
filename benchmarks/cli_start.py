"""How fast the `rlm` command starts: `--help`, `models`, `runs list`, and `rlm ask` from
launch to its first model request (tiny context on a migrated store; 1 GB text context on
a fresh store), against a bare interpreter (`python -c pass`) of the same venv.

Every command runs in a fresh process through the venv's `rlm` entry point; the commands
are interleaved, and each figure is the median of several rounds. `rlm ask` talks to the
loopback simulator (the `SimServer` that `rlm sim serve` runs), hosted on a thread of this
process so that its request log gives the arrival time of the first request; launch is
the wall-clock time just before the process is spawned.

Two import regimes: with a bytecode cache (`PYTHONPYCACHEPREFIX` under /tmp, warmed
first: what an installed package has) and without one (`PYTHONDONTWRITEBYTECODE=1` and no
`__pycache__` in the venv, as this machine is set up: every import compiles its source).

    uv run python benchmarks/cli_start.py [--rounds 7] [--big-rounds 3] [--big-gb 1]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

from rlm_engine.sim.config import SimConfig
from rlm_engine.sim.policies import CallablePolicy
from rlm_engine.sim.runner import SimServerThread

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).parent / "results" / "cli_start.md"
VENV_BIN = Path(sys.executable).parent
RLM = str(VENV_BIN / "rlm")
PYTHON = str(VENV_BIN / "python")
# What `rlm ask` imports before its first request: its own modules and the HTTP client.
ASK_IMPORTS = "import rlm_engine.cli.ask, rlm_engine.lm.openai_direct, rlm_engine.lm.http1"
TARGET_HELP_RATIO = 8.0
TARGET_TINY_S = 0.5  # plus the interpreter's start
TARGET_BIG_S = 1.5
TARGET_RUNS_LIST_S = 0.25  # "well under half a second": half of it


def base_env(cache: bool, pycache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI", "RLM_"))}
    env.pop("PYTHONPYCACHEPREFIX", None)
    if cache:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(pycache)
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def timed(argv: Sequence[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def first_request(
    sim: SimServerThread, env: dict[str, str], home: Path, context: Path
) -> tuple[float, float]:
    """Launch `rlm ask`; seconds to its first model request, and to its exit."""
    seen = len(sim.requests)
    run_env = {
        **env,
        "RLM_HOME": str(home),
        "OPENAI_BASE_URL": sim.url,
        "OPENAI_API_KEY": "sim",
    }
    argv = [RLM, "ask", "What is in the context?", "--context", str(context)]
    argv += ["--model", "openai/sim-model", "--json"]
    launched = time.time()
    done = subprocess.run(argv, env=run_env, capture_output=True, text=True, check=False)
    exited = time.time() - launched
    if done.returncode != 0:
        raise RuntimeError(f"rlm ask failed ({done.returncode}): {done.stderr[-2000:]}")
    new = sim.requests[seen:]
    if not new:
        raise RuntimeError("rlm ask made no model request")
    return min(r.time for r in new) - launched, exited


def write_big(path: Path, gib: float) -> None:
    line = b"2026-03-14T03:14:15Z host=web-3 level=INFO msg=GET /api/orders 200 in 12ms\n"
    block = line * ((8 << 20) // len(line) + 1)
    target = int(gib * (1 << 30))
    with path.open("wb") as out:
        written = 0
        while written < target:
            chunk = block[: target - written]
            out.write(chunk)
            written += len(chunk)


def median(xs: Sequence[float]) -> float:
    return statistics.median(xs)


def span(xs: Sequence[float]) -> str:
    return f"{min(xs):.3f}-{max(xs):.3f}"


def run_regime(
    cache: bool, rounds: int, big_rounds: int, big: Path, tiny: Path, work: Path
) -> dict[str, list[float]]:
    pycache = work / "pycache"
    env = base_env(cache, pycache)
    store = work / ("home-cache" if cache else "home-nocache")
    sim = SimServerThread(SimConfig(), CallablePolicy(lambda messages: "FINAL(ok)"))
    sim.start()
    try:
        # Warm-up: fills the bytecode cache (when used) and migrates the tiny-context store.
        for argv in ([PYTHON, "-c", "pass"], [RLM, "--help"], [RLM, "models"]):
            timed(argv, env)
        timed([RLM, "runs", "list"], {**env, "RLM_HOME": str(store)})
        first_request(sim, env, store, tiny)
        figures: dict[str, list[float]] = {}
        steps: list[tuple[str, Callable[[], Any]]] = [
            ("python -c pass", lambda: timed([PYTHON, "-c", "pass"], env)),
            ("rlm --help", lambda: timed([RLM, "--help"], env)),
            ("rlm models", lambda: timed([RLM, "models"], env)),
            (
                "rlm runs list",
                lambda: timed([RLM, "runs", "list"], {**env, "RLM_HOME": str(store)}),
            ),
            ("import rlm ask", lambda: timed([PYTHON, "-c", ASK_IMPORTS], env)),
            ("ask tiny", lambda: first_request(sim, env, store, tiny)),
        ]
        for i in range(rounds):
            for name, step in steps:
                value = step()
                if isinstance(value, tuple):
                    first, last = cast(tuple[float, float], value)
                    figures.setdefault(name, []).append(first)
                    figures.setdefault(name + " (exit)", []).append(last)
                else:
                    figures.setdefault(name, []).append(value)
            if i < big_rounds:
                for name, context in (("tiny", tiny), ("1 GB", big)):
                    fresh = Path(tempfile.mkdtemp(prefix="rlm-fresh-", dir=work))
                    try:
                        to_first, to_exit = first_request(sim, env, fresh, context)
                    finally:
                        shutil.rmtree(fresh, ignore_errors=True)
                    figures.setdefault(f"ask {name}, fresh store", []).append(to_first)
                    figures.setdefault(f"ask {name}, fresh store (exit)", []).append(to_exit)
        return figures
    finally:
        sim.stop()


def table(figures: dict[str, list[float]]) -> list[str]:
    bare = median(figures["python -c pass"])
    rows = [
        "| command | median, s | range, s | runs | ratio to `python -c pass` |",
        "|---|---|---|---|---|",
    ]
    labels = {
        "import rlm ask": "`python -c 'import <what rlm ask loads before its first request>'`",
        "ask tiny": "`rlm ask`, tiny context: launch → first model request",
        "ask tiny (exit)": "`rlm ask`, tiny context: launch → exit",
        "ask tiny, fresh store": "`rlm ask`, tiny context, fresh store: launch → first request",
        "ask tiny, fresh store (exit)": "`rlm ask`, tiny context, fresh store: launch → exit",
        "ask 1 GB, fresh store": "`rlm ask`, 1 GB context, fresh store: launch → first request",
        "ask 1 GB, fresh store (exit)": "`rlm ask`, 1 GB context, fresh store: launch → exit",
    }
    for name, xs in figures.items():
        label = labels.get(name, f"`{name}`")
        rows.append(
            f"| {label} | {median(xs):.3f} | {span(xs)} | {len(xs)} | {median(xs) / bare:.1f}x |"
        )
    return rows


def verdicts(figures: dict[str, list[float]]) -> list[str]:
    bare = median(figures["python -c pass"])
    help_ratio = median(figures["rlm --help"]) / bare
    tiny = median(figures["ask tiny"])
    big = median(figures["ask 1 GB, fresh store"])
    listing = median(figures["rlm runs list"])

    def mark(ok: bool) -> str:
        return "met" if ok else "NOT met"

    return [
        f"- `rlm --help` ≤ {TARGET_HELP_RATIO:.0f}x `python -c pass`: {help_ratio:.1f}x, "
        f"{mark(help_ratio <= TARGET_HELP_RATIO)}.",
        f"- tiny context, launch → first request ≤ {TARGET_TINY_S} s + interpreter start "
        f"({TARGET_TINY_S + bare:.3f} s): {tiny:.3f} s, {mark(tiny <= TARGET_TINY_S + bare)}.",
        f"- 1 GB context on a fresh store, launch → first request ≤ {TARGET_BIG_S} s: "
        f"{big:.3f} s, {mark(big <= TARGET_BIG_S)}.",
        f"- `rlm runs list` well under half a second (≤ {TARGET_RUNS_LIST_S} s): "
        f"{listing:.3f} s, {mark(listing <= TARGET_RUNS_LIST_S)}.",
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--big-rounds", type=int, default=3)
    parser.add_argument("--big-gb", type=float, default=1.0)
    args = parser.parse_args(argv)
    command = "uv run python benchmarks/cli_start.py" + "".join(
        f" {a}" for a in (argv if argv is not None else sys.argv[1:])
    )
    work = Path(tempfile.mkdtemp(prefix="rlm-cli-start-"))
    try:
        tiny = work / "tiny.txt"
        tiny.write_text("host=db-7 disk FAILED at 03:14\n")
        big = work / "big.log"
        started = time.perf_counter()
        write_big(big, args.big_gb)
        print(f"wrote {big.stat().st_size:,} bytes in {time.perf_counter() - started:.1f}s")
        results: dict[bool, dict[str, list[float]]] = {}
        for cache in (True, False):
            results[cache] = run_regime(cache, args.rounds, args.big_rounds, big, tiny, work)
            print(("with" if cache else "without") + " a bytecode cache:")
            print("\n".join(table(results[cache])))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    load = os.getloadavg()[1]
    lines = [
        "# CLI start-up",
        "",
        f"Command: `{command}` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{platform.platform()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"load average over the last 5 minutes when the run ended: {load:.1f})",
        "",
        "Each command runs in a fresh process through the venv's `rlm` entry point "
        f"(`{Path(RLM).relative_to(ROOT) if Path(RLM).is_relative_to(ROOT) else RLM}`), "
        f"interleaved: {args.rounds} rounds of every command, the 1 GB case in the first "
        f"{args.big_rounds}. `rlm ask` runs against the loopback simulator (the server "
        "`rlm sim serve` runs, on a thread of the benchmark process) that answers `FINAL(ok)`; "
        "the first request's time is its arrival in the simulator's request log, launch is "
        "the wall-clock time just before the process is spawned. The tiny context is one "
        "line on a store migrated beforehand (and, in the rounds with the 1 GB case, on a "
        "fresh store too, which separates creating the store from the context's size); the "
        "1 GB context is a generated log "
        f"({args.big_gb:g} GiB) on a fresh `RLM_HOME` each time (created, migrated and its "
        "context pinned by that run). `launch → exit` includes waiting for the context to be "
        "pinned, which the run does in the background and before it is recorded as finished.",
        "",
    ]
    for cache, title in ((True, "With a bytecode cache"), (False, "Without a bytecode cache")):
        lines += [f"## {title}", ""]
        if cache:
            lines.append(
                "`PYTHONPYCACHEPREFIX` under /tmp, warmed by one run of each command: "
                "what an installed package (compiled at install) sees."
            )
        else:
            lines.append(
                "`PYTHONDONTWRITEBYTECODE=1` and no `__pycache__` in the venv, as this "
                "machine's environment is set up: every module is compiled from source at "
                "every start, so each imported module costs several times more."
            )
        lines += ["", *table(results[cache]), "", "Targets:", "", *verdicts(results[cache]), ""]
    lines += [
        "Where the tiny run's time goes: the `import` row is the modules `rlm ask` loads "
        "before its first request (the CLI, the engine, pydantic events, plugins, the "
        "OpenAI-compatible adapter and its stdlib HTTP client `lm.http1`; not aiohttp, "
        "SQLAlchemy or the store's SQL modules), "
        "in a process that does nothing else. The store opens in the background: "
        "`rlm ask` hands the run service a `DeferredStore`, whose opening (SQLAlchemy, "
        "the schema check) and whose first step (recording the run) start once the first "
        "root request is on its way, on a thread that competes for the interpreter lock "
        "with a loop that waits for the reply; cells, journal and event writes wait for "
        "the record, and a new run's journal knows it is empty, so nothing before the "
        "first request reads the store. The isolation probe (three short processes) runs "
        "on a thread started before anything else, overlapping the main thread's imports. "
        "What is left before the first request is, roughly in order of cost: pydantic "
        "(events), the engine, plugin and sandbox-host modules and their dataclasses, "
        "pydantic's first validators (which read every installed package's entry points "
        "for plugins), building the RLM and the first call. `rlm runs list` on the default "
        "SQLite store reads the runs with `sqlite3` alone (the SQL store's own statement, "
        "`store.run_rows`), so it loads no SQLAlchemy unless the store must first be "
        "created, migrated or have a dead run marked interrupted. The context's pinning "
        "is not on the first request's path: the 1 GB case pays only the pinning thread's "
        "competition for the two cores, and its copy finishes before exit.",
        "",
        "The machine has 2 cores shared with other work; expect 10-30% run-to-run spread.",
        "",
    ]
    RESULTS.write_text("\n".join(lines))
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
