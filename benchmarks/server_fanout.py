"""Server fan-out: 50 concurrent runs through `rlm serve` vs the same runs through the
library in one process; the server's peak memory; SSE latency from engine to client.

One simulator process (`rlm sim serve --policy fanout --ttft 0.1`): each request takes
100 ms; each run's root turn writes one cell that sends 64 sub-calls through
`llm_query_batched` (32 at a time, the engine's default) and finishes.

- Server: one `rlm serve` process (SQLite store under a fresh RLM_HOME, strict sandbox
  isolation as for every server run), driven over loopback HTTP by httpx: 50 runs
  submitted with POST /v1/runs at once, each followed over SSE
  (GET /v1/runs/{id}/events) until its `run_finished`. Wall time: first POST to the last
  `run_finished` received. Peak memory: the server process's VmHWM.
- Library: `RLM(...).arun` x 50 with `asyncio.gather` in this process, one RLM per run
  (as the server builds), strict isolation, no durable journal.
- SSE latency: for every event a client receives, its receive time minus the event's `ts`
  (stamped by the engine when it made the event): median and p99 over all events.

Rounds are interleaved (server, library, server, ...); medians of ROUNDS.

    uv run python benchmarks/server_fanout.py
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sim_bench import cli_env, fanout_seconds, start_sim

from rlm_engine import RLM

RUNS_AT_ONCE = 50
FANOUT = 64
LATENCY_S = 0.1
ROUNDS = 3
QUESTION = f"FANOUT={FANOUT}"
CONTEXT = "fan-out benchmark context"
RESULTS = Path(__file__).parent / "results" / "server_fanout.md"


@dataclass
class Batch:
    """One round of RUNS_AT_ONCE runs."""

    wall_s: float
    in_cell_s: list[float]
    latencies_s: list[float] = field(default_factory=list[float])
    events: int = 0
    spans: list[tuple[float, float]] = field(default_factory=list[tuple[float, float]])
    """(run_started ts, run_finished ts) of each server run."""


def most_at_once(spans: list[tuple[float, float]]) -> int:
    """The most runs executing at the same moment."""
    edges = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans])
    level = peak = 0
    for _, step in edges:
        level += step
        peak = max(peak, level)
    return peak


# -- the server -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """`rlm serve` on a loopback port with a fresh store; stopped with SIGTERM."""

    def __init__(self, sim_url: str, home: str) -> None:
        port = free_port()
        env = cli_env(home, sim_url, RLM_MODEL="sim/sim-model")
        # Limits high enough that all runs of a round execute at once.
        env.update(RLM_MAX_CONCURRENT_RUNS="64", RLM_TENANT_CONCURRENT_RUNS="64")
        self.url = f"http://127.0.0.1:{port}"
        self.log = Path(home) / "server.log"
        command = [sys.executable, "-m", "rlm_engine.cli.main", "serve", "--port", str(port)]
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"rlm serve exited: {self.log.read_text()[-2000:]}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("rlm serve never became ready")
            time.sleep(0.1)

    def peak_rss_mib(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmHWM")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


async def follow(
    client: httpx.AsyncClient, run_id: str, latencies: list[float], spans: list[tuple[float, float]]
) -> str:
    """Read a run's events until `run_finished`; its answer (from the `final` event)."""
    answer = ""
    started = 0.0
    data: list[str] = []
    async with client.stream("GET", f"/v1/runs/{run_id}/events") as reply:
        reply.raise_for_status()
        async for line in reply.aiter_lines():
            if line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
            elif line == "" and data:
                received = time.time()
                event = json.loads("\n".join(data))
                data = []
                latencies.append(received - float(event["ts"]))
                if event["type"] == "run_started":
                    started = float(event["ts"])
                if event["type"] == "final":
                    answer = str(event["answer"])
                if event["type"] == "run_finished":
                    spans.append((started, float(event["ts"])))
                    return answer
    raise RuntimeError(f"the events of {run_id} ended before run_finished")


async def one_server_run(
    client: httpx.AsyncClient, latencies: list[float], spans: list[tuple[float, float]]
) -> float:
    reply = await client.post("/v1/runs", json={"question": QUESTION, "context": CONTEXT})
    if reply.status_code != 202:
        raise RuntimeError(f"POST /v1/runs: {reply.status_code} {reply.text[:500]}")
    answer = await follow(client, reply.json()["run_id"], latencies, spans)
    return fanout_seconds(answer, FANOUT)


async def through_server(url: str, runs: int) -> Batch:
    limits = httpx.Limits(max_connections=4 * runs, max_keepalive_connections=2 * runs)
    timeout = httpx.Timeout(600, connect=30)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=timeout) as client:
        latencies: list[float] = []
        spans: list[tuple[float, float]] = []
        start = time.perf_counter()
        in_cell = await asyncio.gather(
            *(one_server_run(client, latencies, spans) for _ in range(runs))
        )
        wall = time.perf_counter() - start
    return Batch(wall, list(in_cell), latencies, len(latencies), spans)


# -- the library --------------------------------------------------------------------------


async def one_library_run(sim_url: str) -> float:
    env = {"RLM_SIM_URL": sim_url}
    rlm = RLM("sim/sim-model", env=env, isolation="strict", max_iterations=3)
    async with rlm:
        result = await rlm.arun(QUESTION, CONTEXT)
    return fanout_seconds(result.answer, FANOUT)


async def through_library(sim_url: str, runs: int) -> Batch:
    start = time.perf_counter()
    in_cell = await asyncio.gather(*(one_library_run(sim_url) for _ in range(runs)))
    return Batch(time.perf_counter() - start, list(in_cell))


# -- report -------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def write(
    server: list[Batch], library: list[Batch], peak_mib: float, idle_mib: float, runs: int
) -> str:
    sw = statistics.median(b.wall_s for b in server)
    lw = statistics.median(b.wall_s for b in library)
    lat = [x for b in server for x in b.latencies_s]
    s_cell = statistics.median(x for b in server for x in b.in_cell_s)
    l_cell = statistics.median(x for b in library for x in b.in_cell_s)
    ideal = -(-FANOUT // 32) * LATENCY_S
    rows = "\n".join(
        f"| {i + 1} | {s.wall_s:.2f} | {lib.wall_s:.2f} | {s.wall_s / lib.wall_s:.2f}x "
        f"| {s.events} | {statistics.median(s.latencies_s) * 1000:.1f} "
        f"| {percentile(s.latencies_s, 0.99) * 1000:.1f} | {most_at_once(s.spans)} |"
        for i, (s, lib) in enumerate(zip(server, library, strict=True))
    )
    text = (
        "# Server fan-out: `rlm serve` vs the library\n\n"
        f"Command: `uv run python benchmarks/server_fanout.py` "
        f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.platform()}, "
        f"{os.cpu_count()} cores shared with other work, Python {platform.python_version()}; "
        f"load average over the last 5 minutes when the run ended: {os.getloadavg()[1]:.1f})\n\n"
        f"{runs} runs at once, each a root turn that sends {FANOUT} sub-calls with "
        f"`llm_query_batched` (32 at a time) to the simulator (`rlm sim serve --policy "
        f"fanout --ttft {LATENCY_S}`, its own process: every request takes "
        f"{LATENCY_S * 1000:.0f} ms), then finishes. Server: one `rlm serve` process "
        "(SQLite store, strict sandbox isolation), the runs submitted with `POST /v1/runs` "
        "and each followed over SSE (`GET /v1/runs/{id}/events`) by httpx in this process; "
        "wall time from the first POST to the last `run_finished` received. Library: "
        f"`RLM(...).arun` x {runs} with `asyncio.gather` in one process, strict isolation, "
        "no durable journal. Simulator figures measure the engine and the server, never a "
        "model.\n\n"
        "## Medians\n\n"
        "| measure | value |\n|---|---|\n"
        f"| wall time, server (median of {len(server)} rounds) | {sw:.2f} s |\n"
        f"| wall time, library (median of {len(library)} rounds) | {lw:.2f} s |\n"
        f"| server / library | {sw / lw:.2f}x |\n"
        f"| in-cell batch time per run, server / library (ideal {ideal:.1f} s) "
        f"| {s_cell:.2f} s / {l_cell:.2f} s |\n"
        f"| server peak memory (VmHWM, whole benchmark) | {peak_mib:.0f} MiB "
        f"(idle after start: {idle_mib:.0f} MiB) |\n"
        f"| SSE latency engine to client, median | {statistics.median(lat) * 1000:.1f} ms |\n"
        f"| SSE latency engine to client, p99 | {percentile(lat, 0.99) * 1000:.1f} ms |\n"
        f"| events received over SSE per round | {server[0].events} |\n"
        f"| server runs executing at once, most (from their events' ts), median "
        f"| {statistics.median(most_at_once(b.spans) for b in server):.0f} of {runs} |\n\n"
        "## Rounds\n\n"
        "| round | server s | library s | ratio | SSE events | SSE median ms | SSE p99 ms "
        "| server runs at once |\n"
        "|---|---|---|---|---|---|---|---|\n" + rows + "\n\n"
        "SSE latency is the client's receive time minus the event's `ts`, which the engine "
        "stamps when it makes the event; both clocks are this machine's. It covers the "
        "event sink's batching (a run's events are gathered for up to 100 ms and committed "
        "together: `StoreEventSink.FLUSH_EVERY_S`), the commit, waking the stream, and HTTP "
        "to the client. In-cell batch time is what the runs' cells measured around their "
        f"{FANOUT} sub-calls. The server's queue starts every run at once, so its one "
        "event loop does the engine work of all of them plus the durable journal, the "
        "event store and the SSE streams: on 2 cores that CPU is what the ratio and the "
        "SSE latency measure (`rlm serve --workers N` spreads runs over processes). The "
        "sandbox worker processes of the runs (one per run) are not in the server's VmHWM. "
        "The machine has 2 cores shared with other work; the rounds show the spread.\n"
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--runs", type=int, default=RUNS_AT_ONCE, help="runs at once")
    args = parser.parse_args()
    sim, sim_url = start_sim("--ttft", str(LATENCY_S), "--policy", "fanout")
    try:
        with tempfile.TemporaryDirectory(prefix="rlm-serve-bench-") as home:
            server = Server(sim_url, home)
            try:
                idle = server.peak_rss_mib()
                asyncio.run(through_server(server.url, 2))  # warm-up: imports, first sandboxes
                asyncio.run(through_library(sim_url, 2))
                served: list[Batch] = []
                direct: list[Batch] = []
                for rnd in range(args.rounds):
                    served.append(asyncio.run(through_server(server.url, args.runs)))
                    direct.append(asyncio.run(through_library(sim_url, args.runs)))
                    print(
                        f"round {rnd + 1}/{args.rounds}: server {served[-1].wall_s:.2f} s, "
                        f"library {direct[-1].wall_s:.2f} s"
                    )
                peak = server.peak_rss_mib()
            finally:
                server.stop()
        print(write(served, direct, peak, idle, args.runs))
    finally:
        sim.terminate()
        sim.wait(timeout=10)


if __name__ == "__main__":
    main()
