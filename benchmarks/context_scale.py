"""Context scale, 1 MB to 1 GB: time to the first root call, peak memory, root request size.

For each size a text file is written to /tmp (lines of filler with one needle line at the
very end) and a fresh Python process runs `RLM(...).run(question, Path(file))` with the
default local sandbox (bubblewrap isolation where available). The root model is scripted
and records every request: turn 1 writes a cell that measures the context and finds the
needle, turn 2 reads the worker's memory from /proc and finishes. Reported per size:

- time from `RLM(...)` to the first root call (sandbox start + context load + prompt);
- the host process's peak RSS (`getrusage` high-water, in that fresh process);
- the worker's peak RSS (VmHWM), private memory (RssAnon) and mapped file pages (RssFile);
- the size of the largest root request (all message contents, UTF-8 bytes).

    uv run python benchmarks/context_scale.py [--max-size 1g]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SIZES = {"1m": 1 << 20, "10m": 10 << 20, "100m": 100 << 20, "1g": 1 << 30}
REPS = 5
RESULTS = Path(__file__).parent / "results" / "context_scale.md"
NEEDLE = "the secret code is 7391-ALPHA"
CELL = (
    "n = len(context)\n"
    "if hasattr(context, 'grep'):\n"
    "    hit = context.grep('secret code')[0][1]\n"
    "else:\n"
    "    i = context.find('secret code')\n"
    "    hit = context[i : context.index('\\n', i)]\n"
    "print(type(context).__name__, n, hit)"
)


def generate(path: Path, size: int) -> None:
    line = "the quick brown fox jumps over the lazy dog while the log rotates again\n"
    block = line * (1024 * 1024 // len(line))
    with path.open("w") as handle:
        written = 0
        while written + len(block) <= size - 100:
            handle.write(block)
            written += len(block)
        rest = size - written - len(NEEDLE) - 2
        handle.write(line * (rest // len(line)))
        handle.write(NEEDLE + "\n")


def descendants(root: int) -> list[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [], [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent]
        found += children
        frontier += children
    return found


def memory_kb(pid: int) -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        key = line.split(":")[0]
        if key in ("VmHWM", "RssAnon", "RssFile"):
            out[key] = int(line.split()[1])
    return out


def child(path: str) -> None:
    """One size, in this fresh process; prints one JSON line."""
    from rlm_engine import RLM
    from rlm_engine.lm.scripted import ScriptedModel
    from rlm_engine.types import Message

    baseline_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    first_call: list[float] = []
    request_bytes: list[int] = []
    worker: dict[str, int] = {}
    context_type: list[str] = []

    def root(messages: list[Message]) -> str:
        if not first_call:
            first_call.append(time.perf_counter())
        request_bytes.append(sum(len(m.content.encode()) for m in messages))
        turn = sum(m.role == "assistant" for m in messages)
        if turn == 0:
            return f"```repl\n{CELL}\n```"
        # The worker is alive between turns: the largest descendant is the REPL process.
        found = [memory_kb(pid) for pid in descendants(os.getpid())]
        worker.update(max(found, key=lambda m: m.get("VmHWM", 0), default={}))
        return "FINAL(done)"

    def on_event(event: Any) -> None:
        if event.type == "context_loaded":
            context_type.append(f"{event.context_type}")
        if event.type == "cell_finished":
            context_type.append(event.output.strip()[:120])

    began = time.perf_counter()
    with RLM(ScriptedModel(root), on_event=on_event) as rlm:
        result = rlm.run("Where is the secret code?", Path(path))
    total = time.perf_counter() - began
    assert result.stop_reason == "final", result
    assert NEEDLE.split()[-1] in context_type[-1], context_type
    print(
        json.dumps(
            {
                "first_call_s": first_call[0] - began,
                "total_s": total,
                "host_baseline_kb": baseline_kb,
                "host_peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                "worker": worker,
                "max_request_bytes": max(request_bytes),
                "requests": request_bytes,
                "context": context_type,
            }
        )
    )


def measure(size: int, workdir: Path) -> dict[str, Any]:
    """REPS fresh processes on one file: median times, highest memory and request size."""
    path = workdir / f"context-{size}.txt"
    generate(path, size)
    runs: list[dict[str, Any]] = []
    try:
        for _ in range(REPS):
            done = subprocess.run(
                [sys.executable, __file__, "--child", str(path)],
                capture_output=True,
                text=True,
                timeout=1200,
                check=False,
            )
            if done.returncode != 0:
                raise RuntimeError(f"size {size}: exit {done.returncode}: {done.stderr[-1500:]}")
            runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    finally:
        path.unlink()
    workers = [r["worker"] for r in runs]
    return {
        "size": size,
        "first_call_s": statistics.median(r["first_call_s"] for r in runs),
        "first_call_range": (
            min(r["first_call_s"] for r in runs),
            max(r["first_call_s"] for r in runs),
        ),
        "total_s": statistics.median(r["total_s"] for r in runs),
        "host_baseline_kb": max(r["host_baseline_kb"] for r in runs),
        "host_peak_kb": max(r["host_peak_kb"] for r in runs),
        "worker": {k: max(w.get(k, 0) for w in workers) for k in ("VmHWM", "RssAnon", "RssFile")},
        "max_request_bytes": max(r["max_request_bytes"] for r in runs),
        "context": runs[0]["context"],
    }


def mib(kb: float) -> str:
    return f"{kb / 1024:.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--max-size", default="1g", choices=list(SIZES))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    sizes = list(SIZES.items())[: list(SIZES).index(args.max_size) + 1]
    rows: list[str] = []
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="rlm-context-scale-", dir="/tmp") as tmp:
        for label, size in sizes:
            data = measure(size, Path(tmp))
            results.append(data)
            w = data["worker"]
            kind = data["context"][0]
            low, high = data["first_call_range"]
            rows.append(
                f"| {label.upper()}B | {kind} | {data['first_call_s'] * 1000:.0f} "
                f"({low * 1000:.0f}-{high * 1000:.0f}) "
                f"| {data['total_s']:.2f} | {mib(data['host_baseline_kb'])} → "
                f"{mib(data['host_peak_kb'])} | {mib(w.get('VmHWM', 0))} "
                f"| {mib(w.get('RssAnon', 0))} | {mib(w.get('RssFile', 0))} "
                f"| {data['max_request_bytes']:,} |"
            )
            print(rows[-1], flush=True)
    write(rows, results, args.max_size)


def write(rows: list[str], results: list[dict[str, Any]], max_size: str) -> None:
    smallest = results[0]["max_request_bytes"]
    largest = results[-1]["max_request_bytes"]
    command = "uv run python benchmarks/context_scale.py"
    if max_size != "1g":
        command += f" --max-size {max_size}"
    table = "\n".join(
        [
            "| context | loaded as | to first root call, ms median (range) | whole run, s "
            "| host peak RSS, MiB (after imports → peak) | worker peak RSS, MiB "
            "| worker private (RssAnon), MiB | worker file pages (RssFile), MiB "
            "| largest root request, bytes |",
            "|---|---|---|---|---|---|---|---|---|",
            *rows,
        ]
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        "# Context scale: 1 MB to 1 GB\n\n"
        f"Command: `{command}` ({time.strftime('%Y-%m-%d')}, {platform.platform()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}; load average over the "
        f"last 5 minutes when the run ended: {os.getloadavg()[1]:.1f})\n\n"
        "Each size is a text file on /tmp (filler lines, one needle line at the very end), "
        "deleted after its run. A fresh Python process per size runs "
        "`RLM(ScriptedModel(root)).run(question, Path(file))` with the default local sandbox "
        "(bubblewrap isolation here). The scripted root records each request: its first turn "
        "writes one cell (`len(context)` and a search for the needle), its second turn reads "
        "the REPL worker's memory from `/proc` (the largest descendant of the host process) "
        "and finishes. Time to the first root call is measured from `RLM(...)` construction "
        "(isolation probe, sandbox start, context load, prompt building). Host peak RSS is "
        "`getrusage(RUSAGE_SELF).ru_maxrss` of that process, shown after importing the engine "
        "and at the end. Worker RssFile is page cache of the memory-mapped file, shared with "
        "the file system and reclaimable; RssAnon is the worker's private memory. Request "
        "size = all message contents of one root request in UTF-8 bytes. Each size runs "
        f"{REPS} times, each in a fresh process (the file was just written, so it is in the "
        "page cache); times are medians, memory and request sizes the highest seen. The "
        "machine has 2 cores shared with other work, so start times vary between runs.\n\n"
        f"{table}\n\n"
        f"The largest root request is {smallest:,} bytes at the smallest size and "
        f"{largest:,} bytes at the largest ({largest / smallest:.2f}x for a "
        f"{results[-1]['size'] / results[0]['size']:.0f}x larger context): the root model "
        "sees the context's metadata (type, size, a short preview), never its text. Texts of "
        "64 MiB and more are memory-mapped in the worker (`LargeText`) rather than read into "
        "a `str`; the host does not read the file into memory: it is hard-linked (copied "
        "where a link is impossible) into the sandbox's read-only context directory.\n"
    )


if __name__ == "__main__":
    main()
