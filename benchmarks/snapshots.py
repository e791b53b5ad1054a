"""Cost of the namespace snapshot a journaled run takes after each cell.

Two figures, on a small namespace (a dozen variables: numbers, strings, a dict of 100
entries, a list of 1,000 ints, a function, two modules):

- the snapshot itself: the worker pickles the namespace and the host receives and stores
  the bytes (`snapshot` round trip + blob write), timed around `SnapshotTaker`'s work;
- the run's critical path: a 20-turn journaled run (SQLite store, scripted root that
  answers at once, so the snapshot has no model latency to hide behind, the worst case)
  with snapshots on and off; per cell = difference of the medians / cells.

    uv run python benchmarks/snapshots.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

from rlm_engine import RLM
from rlm_engine.engine.journal_store import StoreJournal
from rlm_engine.lm.scripted import ScriptedModel
from rlm_engine.store import NewRun, open_store
from rlm_engine.types import Message

TURNS = 20
RESULTS = Path(__file__).parent / "results" / "snapshots.md"
SETUP = (
    "```repl\nimport re, json\n"
    "a, b, c = 1, 2.5, 'three'\n"
    "table = {f'k{i}': i * i for i in range(100)}\n"
    "numbers = list(range(1000))\n"
    "words = 'the quick brown fox'.split()\n"
    "def score(x):\n    return len(re.findall('o', x))\n"
    "print(len(table))\n```"
)


def cell(turn: int) -> str:
    return f"```repl\nnumbers[{turn}] = {turn} * 7\nprint(score(words[{turn % 4}]))\n```"


def root() -> ScriptedModel:
    def reply(messages: Sequence[Message]) -> str:
        turn = sum(m.role == "assistant" for m in messages)
        if turn == 0:
            return SETUP
        if turn <= TURNS:
            return cell(turn)
        return "```repl\nFINAL('done')\n```"

    return ScriptedModel(reply)


async def one_run(home: Path, snapshots: bool) -> tuple[float, float, int]:
    store = open_store(f"sqlite:///{home / f'{uuid.uuid4().hex}.db'}", home)
    try:
        run_id = uuid.uuid4().hex[:12]
        store.create_run(NewRun(run_id=run_id, question="bench"))
        limit = 64 * 1024 * 1024 if snapshots else 0
        journal = StoreJournal(store, run_id, snapshot_max_bytes=limit)
        rlm = RLM(root(), isolation="none", max_iterations=TURNS + 5)
        began = time.perf_counter()
        result = await rlm.arun("bench", "ctx", run_id=run_id, journal=journal)
        elapsed = time.perf_counter() - began
        await rlm.aclose()
        assert result.answer == "done", result.stop_detail
        cells = store.load_journal(run_id).cells
        kept = sum(1 for c in cells if (c.meta.get("snapshot") or {}).get("ref"))
        sizes = {(c.meta.get("snapshot") or {}).get("ref") for c in cells} - {None}
        blob_bytes = sum(len(store.blobs.get(ref)) for ref in sizes if isinstance(ref, str))
        return elapsed, blob_bytes / max(len(sizes), 1), kept
    finally:
        store.close()


async def snapshot_round_trip(rounds: int) -> float:
    from rlm_engine.sandbox.local import LocalSandbox

    async def nothing(method: str, params: object) -> None:
        return None

    async with LocalSandbox(nothing, isolation="none") as box:
        await box.load_context("ctx")
        await box.execute(SETUP.removeprefix("```repl\n").removesuffix("```"), timeout_s=10)
        times: list[float] = []
        for i in range(rounds * 20):
            # A change each time, so every snapshot is pickled and sent whole.
            await box.execute(f"numbers[0] = {i}", timeout_s=10)
            began = time.perf_counter()
            await box.snapshot(max_bytes=64 * 1024 * 1024)
            times.append(time.perf_counter() - began)
        return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    on: list[float] = []
    off: list[float] = []
    size, kept = 0.0, 0
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        for _ in range(args.rounds):
            elapsed, size, kept = asyncio.run(one_run(home, True))
            on.append(elapsed)
            off.append(asyncio.run(one_run(home, False))[0])
    trip = asyncio.run(snapshot_round_trip(args.rounds))
    cells = TURNS + 2
    per_cell = (statistics.median(on) - statistics.median(off)) / cells
    load = os.getloadavg()[0]
    text = f"""# Namespace snapshots: cost per cell

`uv run python benchmarks/snapshots.py --rounds {args.rounds}` on {platform.machine()},
Python {platform.python_version()}, load average {load:.1f} at the end.

| measure | value |
| --- | --- |
| snapshot round trip (pickle in the worker, bytes to the host), median | {trip * 1e3:.2f} ms |
| snapshot size (small namespace, with `random`'s state) | {size / 1024:.1f} KiB |
| cells with a snapshot kept | {kept} of {cells} (the FINAL cell takes none) |
| {TURNS + 2}-cell journaled run, snapshots on (median) | {statistics.median(on):.3f} s |
| same run, snapshots off (median) | {statistics.median(off):.3f} s |
| critical-path cost per cell, root answering at once (worst case) | {per_cell * 1e3:.2f} ms |

With a real root model the snapshot runs while the root call is in flight, so the
critical-path cost per cell is about zero; the figure above is what it costs when the
model answers instantly.
"""
    RESULTS.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
