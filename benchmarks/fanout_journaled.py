"""Journaled fan-out: `rlm ask` (SQLite, Postgres) vs no journal vs the ideal; and what a
`kill -9` in the middle of a batch costs on resume.

1. Timing. One simulator process (`rlm sim serve --policy fanout --ttft 0.1`): each request
   takes 100 ms; the root turn writes one cell that sends N sub-calls through
   `llm_query_batched` and times them inside the REPL. Compared in the same run, interleaved:
   - `rlm ask` as users run it (its own process, journaled in the default SQLite store
     under a fresh temporary RLM_HOME),
   - the same question through the library, `RLM(...).run`, with no durable journal,
   - `rlm ask` with `RLM_STORE_URL` on Postgres (a private schema, dropped afterwards).
   - optionally `rlm ask` (SQLite) of an earlier commit, for a before/after comparison:
     `--before DIR` with DIR holding that commit's `src/` (put first on PYTHONPATH).
   Ideal = ceil(N / concurrency) x 100 ms. Medians of RUNS rounds.

2. Kill -9 resume. The simulator runs in this process (on its own thread and event loop),
   so the moment of the kill is known exactly: `rlm ask` sends 1,024 sub-calls 64 wide; once
   KILL_AFTER sub-calls have arrived (and a further delay), the simulator's loop notes which
   requests it has received without finishing their reply and SIGKILLs the CLI process in
   the same step. Then `rlm runs resume RUN_ID` finishes the run. Counted at the server: the
   sub-call prompts requested twice, against the requests in flight at the kill.

    uv run python benchmarks/fanout_journaled.py
    # with the code before group commit beside it:
    git archive 25c4993 src | tar -x -C /tmp/before
    uv run python benchmarks/fanout_journaled.py --before /tmp/before --before-label 25c4993
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sim_bench import cli_env, rlm_ask, start_sim
from sim_bench import fanout_seconds as parse

from rlm_engine import RLM
from rlm_engine.sim import FanoutPolicy, SimConfig, SimServer
from rlm_engine.sim.oracle_fanout import engine_of
from rlm_engine.sim.policies import JsonMessage, message_text

LATENCY_S = 0.1
CASES = ((256, 64), (1024, 64), (1024, 256))
RUNS = 5
KILL_CALLS, KILL_WIDTH, KILL_AFTER = 1024, 64, 512
KILL_DELAYS_S = tuple(step / 100 for step in range(12))  # 0, 10, ..., 110 ms: a whole wave
POSTGRES_URL = os.environ.get(
    "RLM_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
RESULTS = Path(__file__).parent / "results" / "fanout_journaled.md"
RLM_CLI = str(Path(sys.executable).with_name("rlm"))


def ask_command(count: int, concurrency: int, context: Path) -> list[str]:
    command = [RLM_CLI, "ask", f"FANOUT={count}", "--model", "sim/sim-model"]
    command += ["--context", str(context), "--max-concurrency", str(concurrency)]
    return [*command, "--max-iterations", "3", "--json"]


def ask(
    url: str, count: int, concurrency: int, store_url: str | None = None, src: str | None = None
) -> float:
    """`rlm ask` in its own process, journaled (SQLite under a fresh RLM_HOME by default);
    ``src`` runs another checkout's code."""
    env = {"RLM_STORE_URL": store_url} if store_url is not None else {}
    if src is not None:
        env["PYTHONPATH"] = src
    flags = ("--max-concurrency", str(concurrency), "--max-iterations", "3")
    result = rlm_ask(url, f"FANOUT={count}", "fan-out benchmark context", *flags, env=env)
    return parse(result["answer"], count)


def library(url: str, count: int, concurrency: int) -> float:
    """The same run through the library, without a durable journal."""
    env = {"RLM_SIM_URL": url}
    with RLM("sim/sim-model", env=env, max_concurrency=concurrency, max_iterations=3) as rlm:
        result = rlm.run(f"FANOUT={count}", "fan-out benchmark context")
    return parse(result.answer, count)


class PostgresSchema:
    """A private schema for the benchmark's Postgres runs, dropped at the end."""

    def __init__(self) -> None:
        self.name = f"rlm_bench_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        self._admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
        with self._admin.connect() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{self.name}"'))
        url = sa.make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={self.name}"})
        self.url = url.render_as_string(hide_password=False)

    def drop(self) -> None:
        with self._admin.connect() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{self.name}" CASCADE'))
        self._admin.dispose()


VARIANTS = ("ask_sqlite", "library", "ask_postgres")


def timing(
    before: str | None,
    cases: tuple[tuple[int, int], ...] = CASES,
    rounds: int = RUNS,
    only: tuple[str, ...] = VARIANTS,
) -> dict[tuple[int, int], dict[str, list[float]]]:
    proc, url = start_sim("--ttft", str(LATENCY_S), "--policy", "fanout")
    schema = PostgresSchema()
    measures: dict[str, Callable[[int, int], float]] = {
        "ask_sqlite": lambda n, c: ask(url, n, c),
        "library": lambda n, c: library(url, n, c),
        "ask_postgres": lambda n, c: ask(url, n, c, schema.url),
    }
    variants = [v for v in VARIANTS if v in only]
    if before is not None:
        src = str(Path(before) / "src")
        measures["ask_before"] = lambda n, c: ask(url, n, c, src=src)
        variants.append("ask_before")
    samples = {case: {v: list[float]() for v in variants} for case in cases}
    try:
        library(url, 16, 16)  # warm-up: imports and the first sandbox
        ask(url, 16, 16)
        for rnd in range(rounds):
            for case in cases:
                for variant in variants:
                    samples[case][variant].append(measures[variant](*case))
            progress = json.dumps({str(k): v for k, v in samples.items()})
            print(f"round {rnd + 1}/{rounds}: {progress}")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        schema.drop()
    return samples


# -- kill -9 ------------------------------------------------------------------------------


def _key(messages: list[JsonMessage]) -> str | None:
    """A sub-call's prompt (unique per sub-call), or None for a root turn."""
    return None if engine_of(messages) is not None else message_text(messages[-1])


@dataclass
class Arrivals:
    """Every sub-call request the simulator admitted, in order (policy = arrival)."""

    keys: list[str] = field(default_factory=list[str])
    reached: threading.Event = field(default_factory=threading.Event)
    threshold: int = 0


class RecordingFanout:
    def __init__(self, arrivals: Arrivals) -> None:
        self.arrivals = arrivals
        self.inner = FanoutPolicy()

    def __call__(self, model: str, messages: list[JsonMessage], /) -> str:
        key = _key(messages)
        if key is not None:
            self.arrivals.keys.append(key)
            if len(self.arrivals.keys) >= self.arrivals.threshold:
                self.arrivals.reached.set()
        return self.inner(model, messages)


class LoopSim:
    """The simulator on its own event loop thread, so a kill can be timed on that loop."""

    def __init__(self) -> None:
        self.arrivals = Arrivals()
        self.log_start = 0
        config = SimConfig(ttft_s=LATENCY_S)
        self.server = SimServer(config, RecordingFanout(self.arrivals))
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.on_loop(self.server.start())

    def on_loop(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def completed_keys(self) -> list[str]:
        """Sub-calls whose reply the server finished writing (status 200)."""
        done = [r for r in self.server.requests[self.log_start :] if r.status == 200]
        return [k for k in (_key(list(r.messages)) for r in done) if k is not None]

    def kill_now(self, pid: int) -> dict[str, int]:
        """The moment of the kill, in one step of the loop (no handler runs meanwhile):
        SIGSTOP the CLI (it reads nothing more), count what is in flight, then SIGKILL.

        Counted: requests the server received and has not answered, answers the server
        wrote that are still unread in the CLI's socket buffers, and requests the CLI wrote
        that the server has not read yet (each connection carries one exchange at a time;
        the buffers are the kernel's, read from /proc/net/tcp while the CLI is stopped)."""

        async def snapshot_and_kill() -> dict[str, int]:
            os.kill(pid, signal.SIGSTOP)
            _wait_stopped(pid)
            arrived = Counter(self.arrivals.keys)
            completed = Counter(self.completed_keys())
            unanswered = sum((arrived - completed).values())
            answers_unread, requests_unread = _unread_exchanges(self.server.port)
            os.kill(pid, signal.SIGKILL)
            return {
                "arrived": len(self.arrivals.keys),
                "completed": sum(completed.values()),
                "unanswered": unanswered,
                "answers_unread": answers_unread,
                "requests_unread": requests_unread,
            }

        return self.on_loop(snapshot_and_kill())

    def stop(self) -> None:
        self.on_loop(self.server.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def _wait_stopped(pid: int) -> None:
    """Until every thread of ``pid`` is stopped (SIGSTOP is delivered asynchronously)."""
    deadline = time.monotonic() + 5
    tasks = Path(f"/proc/{pid}/task")
    while time.monotonic() < deadline:
        states = [(t / "stat").read_text().rsplit(")", 1)[1].split()[0] for t in tasks.iterdir()]
        if all(state in ("T", "t") for state in states):
            return
        time.sleep(0.0002)
    raise RuntimeError("the CLI did not stop")


def _unread_exchanges(port: int) -> tuple[int, int]:
    """Loopback TCP connections to ``port`` with bytes waiting to be read: on the client's
    end (answers it has not read), on the server's (requests it has not read)."""
    answers = requests = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as handle:
            next(handle)
            for line in handle:
                fields = line.split()
                local, remote = (int(a.rsplit(":", 1)[1], 16) for a in fields[1:3])
                unread = int(fields[4].split(":")[1], 16)
                if unread and remote == port:
                    answers += 1
                elif unread and local == port:
                    requests += 1
    return answers, requests


def journaled_sub_calls(home: Path) -> tuple[str, int]:
    from rlm_engine.store.factory import open_store

    store = open_store(None, home)
    try:
        run = store.list_runs(limit=1)[0]
        snapshot = store.load_journal(run.run_id)
        return run.run_id, sum(
            1 for c in snapshot.calls.values() if c.kind == "llm" and c.status == "completed"
        )
    finally:
        store.close()


def kill_and_resume(sim: LoopSim, delay_s: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="rlm-kill-") as home:
        context = Path(home) / "context.txt"
        context.write_text("fan-out benchmark context")
        env = cli_env(home, sim.server.url)
        sim.arrivals.keys.clear()
        sim.arrivals.reached.clear()
        sim.arrivals.threshold = KILL_AFTER
        sim.log_start = len(sim.server.requests)
        proc = subprocess.Popen(
            ask_command(KILL_CALLS, KILL_WIDTH, context),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if not sim.arrivals.reached.wait(120):
            proc.kill()
            raise RuntimeError("the batch never reached the kill point")
        time.sleep(delay_s)
        at_kill = sim.kill_now(proc.pid)
        proc.wait(30)
        time.sleep(3 * LATENCY_S)  # requests the dead client had sent finish at the server
        arrived_by_crash = len(sim.arrivals.keys)
        run_id, journaled = journaled_sub_calls(Path(home))
        resumed = subprocess.run(
            [RLM_CLI, "runs", "resume", run_id, "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if resumed.returncode != 0:
            raise RuntimeError(f"resume exit {resumed.returncode}: {resumed.stderr[-800:]}")
        parse(json.loads(resumed.stdout)["answer"], KILL_CALLS)
        counts = Counter(sim.arrivals.keys)
    return {
        "delay_ms": round(delay_s * 1000),
        **at_kill,
        "arrived_after_kill": arrived_by_crash - at_kill["arrived"],
        # The CLI was stopped before it was killed: what arrived later, it had sent before.
        "in_flight": at_kill["unanswered"]
        + at_kill["answers_unread"]
        + arrived_by_crash
        - at_kill["arrived"],
        "journaled": journaled,
        "replied_not_journaled": at_kill["completed"] - journaled,
        "read_not_journaled": at_kill["completed"] - at_kill["answers_unread"] - journaled,
        "resume_requests": len(sim.arrivals.keys) - arrived_by_crash,
        "repeats": sum(1 for n in counts.values() if n > 1),
        "distinct": len(counts),
    }


def kills() -> list[dict[str, Any]]:
    sim = LoopSim()
    try:
        return [kill_and_resume(sim, delay) for delay in KILL_DELAYS_S]
    finally:
        sim.stop()


# -- report -------------------------------------------------------------------------------


def _cell(values: list[float], ideal: float) -> str:
    m = statistics.median(values)
    return f"{m:.3f} ({m / ideal:.2f}x)"


def _acceptance(
    samples: dict[tuple[int, int], dict[str, list[float]]], trials: list[dict[str, Any]]
) -> list[str]:
    med = {case: {v: statistics.median(x) for v, x in by.items()} for case, by in samples.items()}
    small, wide, narrow = med[(256, 64)], med[(1024, 256)], med[(1024, 64)]

    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    pg = [med[c]["ask_postgres"] / med[c]["library"] for c in CASES]
    within = sum(t["repeats"] <= t["in_flight"] for t in trials)
    explained = all(
        t["repeats"] == t["unanswered"] + t["arrived_after_kill"] + t["replied_not_journaled"]
        for t in trials
    )
    lost = sum(max(t["read_not_journaled"], 0) for t in trials)
    return [
        f"- SQLite 256 x 64 at most 0.5 s: {small['ask_sqlite']:.3f} s, "
        f"{verdict(small['ask_sqlite'] <= 0.5)} (no journal: {small['library']:.3f} s).",
        f"- SQLite 256 x 64 within 1.15x of no journal: "
        f"{small['ask_sqlite'] / small['library']:.2f}x, "
        f"{verdict(small['ask_sqlite'] <= 1.15 * small['library'])}.",
        f"- 1,024 calls faster 256 wide than 64 wide (SQLite): {wide['ask_sqlite']:.3f} s vs "
        f"{narrow['ask_sqlite']:.3f} s, {verdict(wide['ask_sqlite'] < narrow['ask_sqlite'])}.",
        "- Postgres within 1.3x of no journal: "
        + ", ".join(f"{r:.2f}x" for r in pg)
        + f", {verdict(all(r <= 1.3 for r in pg))}.",
        f"- Kill -9: repeats at most the calls in flight at the kill in {within} of "
        f"{len(trials)} trials. In "
        + ("every" if explained else "not every")
        + " trial, repeats = received and unanswered + arrived after the kill + answered "
        "but not journaled: no call journaled before the kill was requested again. Answers "
        f"the CLI had read but not yet journaled, over all trials: {lost}.",
    ]


def write(
    samples: dict[tuple[int, int], dict[str, list[float]]],
    trials: list[dict[str, Any]],
    before_label: str | None,
) -> None:
    rows: list[str] = []
    for (n, conc), by in samples.items():
        ideal = math.ceil(n / conc) * LATENCY_S
        sqlite, lib, pg = (by[v] for v in VARIANTS)
        ms, ml, mp = (statistics.median(x) for x in (sqlite, lib, pg))
        before = f" {_cell(by['ask_before'], ideal)} |" if "ask_before" in by else ""
        rows.append(
            f"| {n} | {conc} | {ideal:.2f} | {_cell(sqlite, ideal)} | {_cell(lib, ideal)} "
            f"| {_cell(pg, ideal)} | {ms / ml:.2f}x | {mp / ml:.2f}x "
            f"| {min(sqlite):.2f}-{max(sqlite):.2f} / {min(lib):.2f}-{max(lib):.2f} "
            f"/ {min(pg):.2f}-{max(pg):.2f} |{before}"
        )
    before_head = f" `rlm ask` SQLite at {before_label} s |" if before_label else ""
    before_rule = "---|" if before_label else ""
    before_note = (
        f" The last column is `rlm ask` (SQLite) running the code of commit {before_label}, "
        "before group commit, in the same rounds."
        if before_label
        else ""
    )
    kill_rows = [
        f"| {t['delay_ms']} | {t['arrived']} | {t['completed']} | {t['unanswered']} "
        f"| {t['answers_unread']} | {t['requests_unread']} | {t['in_flight']} "
        f"| {t['arrived_after_kill']} | {t['journaled']} | {t['read_not_journaled']} "
        f"| {t['resume_requests']} | {t['repeats']} "
        f"| {'yes' if t['repeats'] <= t['in_flight'] else 'NO'} |"
        for t in trials
    ]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        "# Journaled fan-out and kill -9 resume\n\n"
        f"Command: `uv run python benchmarks/fanout_journaled.py` "
        f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.platform()}, "
        f"{os.cpu_count()} cores shared with other work, Python {platform.python_version()}; "
        f"load average over the last 5 minutes when the run ended: {os.getloadavg()[1]:.1f})\n\n"
        "## Fan-out, journaled and not\n\n"
        f"Each sub-call takes {LATENCY_S * 1000:.0f} ms at the simulator (`rlm sim serve "
        "--policy fanout`, its own process); the root turn writes one cell that sends N "
        "sub-calls with `llm_query_batched` and times them inside the REPL: that time is "
        f"shown, the median of {RUNS} rounds, each round running every row and column once "
        "(interleaved). Columns: `rlm ask` as users run it (its own process, journaled in "
        "the default SQLite store under a fresh temporary RLM_HOME); the library, "
        "`RLM(...).run`, with no durable journal (in the benchmark's process); `rlm ask` "
        "with `RLM_STORE_URL` on the local Postgres (one private schema). Ideal = "
        "ceil(N / concurrency) x 100 ms; ratios to the ideal in parentheses."
        f"{before_note}\n\n"
        "| sub-calls | concurrency | ideal s | `rlm ask` SQLite s | no journal s "
        "| `rlm ask` Postgres s | SQLite / no journal | Postgres / no journal "
        f"| range s (SQLite / none / Postgres) |{before_head}\n"
        f"|---|---|---|---|---|---|---|---|---|{before_rule}\n" + "\n".join(rows) + "\n\n"
        "## Kill -9 in the middle of a batch, then `rlm runs resume`\n\n"
        f"`rlm ask` sends {KILL_CALLS} sub-calls {KILL_WIDTH} wide (journaled, SQLite). The "
        "simulator runs in the benchmark's process on its own event loop; once "
        f"{KILL_AFTER} sub-calls have arrived and a further delay has passed, one step of "
        "that loop stops the CLI (SIGSTOP, waiting until every thread is stopped), counts "
        "what is in flight and SIGKILLs it. In flight at the kill = requests the server "
        "received and had not answered + answers the server had written that were still "
        "unread in the CLI's socket buffers (the kernel's receive queues, from "
        "/proc/net/tcp; an HTTP/1.1 connection carries one exchange at a time) + requests "
        "that arrived after the kill (the CLI, stopped first, had sent them before; the "
        "column before it counts those still unread in the server's socket buffers at the "
        "kill). `rlm runs resume RUN_ID` then "
        "finishes the run (every resume here ended with all 1,024 answers). Repeats = "
        "sub-call prompts the server received twice over both processes. Read, not "
        "journaled = answers the CLI had read whose call is not in the journal (read from "
        "the store after the kill): the calls a crash re-pays beyond those in flight.\n\n"
        "| delay after arrival 512, ms | arrived | answered | unanswered "
        "| answers unread by the CLI | requests unread by the server | in flight at the kill "
        "| arrived after the kill | journaled | read, not journaled | resume requests "
        "| repeats | repeats <= in flight |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n" + "\n".join(kill_rows) + "\n\n"
        "## Against the targets\n\n" + "\n".join(_acceptance(samples, trials)) + "\n\n"
        "The machine has 2 cores shared with other work (see the load average above); the "
        "range column shows the run-to-run spread.\n"
    )
    print(RESULTS.read_text())


def quick(rows: str | None, rounds: int, only: tuple[str, ...]) -> None:
    cases = CASES
    if rows:
        cases = tuple(
            (int(n), int(c)) for n, c in (row.lower().split("x") for row in rows.split(","))
        )
    samples = timing(None, cases, rounds, only)
    for (n, conc), by in samples.items():
        med = {v: statistics.median(x) for v, x in by.items()}
        line = ", ".join(f"{v} {m:.3f} s" for v, m in med.items())
        if "library" in med:
            line += "".join(
                f", {v} / library {m / med['library']:.2f}x"
                for v, m in med.items()
                if v != "library"
            )
        print(f"{n} x {conc}: {line}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", help="a directory holding an earlier commit's src/")
    parser.add_argument("--before-label", help="what to call it in the results (a commit)")
    parser.add_argument(
        "--only-fanout",
        action="store_true",
        help="a quick look: the timing alone, no kill trials; prints medians, writes no results",
    )
    parser.add_argument("--rounds", type=int, default=RUNS, help="rounds (with --only-fanout)")
    parser.add_argument(
        "--rows", help="with --only-fanout: rows as CALLSxWIDTH, comma-separated (1024x256)"
    )
    parser.add_argument(
        "--variants",
        default=",".join(VARIANTS),
        help=f"with --only-fanout: columns to run, comma-separated ({','.join(VARIANTS)})",
    )
    args = parser.parse_args()
    if args.only_fanout:
        quick(args.rows, args.rounds, tuple(args.variants.split(",")))
        return
    trials = kills()
    print(json.dumps(trials))
    samples = timing(args.before)
    write(samples, trials, (args.before_label or "before") if args.before else None)


if __name__ == "__main__":
    main()
