"""The web UI's execution tree on a 5,000-node run, in Chromium: time to first render
of the run page, and time to apply 1,000 live events to it.

The events are real: a simulator run through `rlm serve` (one cell of 5,000 sub-calls,
then one of 250, then FINAL) is recorded once. Each round then builds a new run in the
same store, owned and kept "running" by this process: the events up to the second cell
(5,000 sub-calls, about 5,000 tree nodes) are in the store when the page opens, and the
next 1,000 are appended in one transaction once the tree is on screen. The server polls
a run of another process twice a second and sends the 1,000 at once.

- First render: the page's `rlm:tree-first-render` mark (the first frame with tree rows),
  and the time until every stored event is applied (`window.__rlmTree.applied`), both in
  ms since navigation start (`performance.now()`).
- Live events: from the first chunk of the stream read after the append (a wrapper of
  `ReadableStreamDefaultReader.read`, installed before the page's scripts) to the first
  animation frame at which `__rlmTree.applied` counts all 1,000.

Medians of ROUNDS, each in a fresh browser context.

    uv run python benchmarks/ui_tree.py
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from pydantic import TypeAdapter

from rlm_engine.events import Event
from rlm_engine.sim import SimServerThread
from rlm_engine.sim.policies import message_text
from rlm_engine.store.factory import open_store
from rlm_engine.store.protocol import Store
from rlm_engine.store.records import NewRun

FIRST = 5_000
SECOND = 250
LIVE = 1_000
ROUNDS = 5
CHROMIUM = "/usr/bin/chromium"
RESULTS = Path(__file__).parent / "results" / "ui_tree.md"
MODEL = "sim/sim-model"

# Installed before the page's scripts: the time of every chunk the page reads from a
# stream once the benchmark arms it (the SSE body is read with fetch + getReader).
HOOK = """
window.__benchChunks = [];
window.__benchArmed = false;
const read = ReadableStreamDefaultReader.prototype.read;
ReadableStreamDefaultReader.prototype.read = function () {
  return read.call(this).then((r) => {
    if (window.__benchArmed && r && !r.done) window.__benchChunks.push(performance.now());
    return r;
  });
};
"""

# Resolves with the performance.now() of the animation frame after the one in which the
# tree had applied ``target`` events: the page applies a batch in a frame callback and
# renders it then, so the next frame is the first that can show it.
WAIT_APPLIED = """
(target) => new Promise((resolve) => {
  const tick = () => {
    const t = window.__rlmTree;
    if (t && t.applied >= target) requestAnimationFrame(() => resolve(performance.now()));
    else requestAnimationFrame(tick);
  };
  tick();
})
"""


def is_root(messages: list[dict[str, Any]]) -> bool:
    return bool(messages) and message_text(messages[0]).startswith("You answer a question")


def fanout(count: int, name: str) -> str:
    return (
        "```repl\n"
        f"{name} = llm_query_batched([f'{name} item {{i}}' for i in range({count})])\n"
        f"print(len({name}))\n"
        "```"
    )


def policy(model: str, messages: list[dict[str, Any]], /) -> str:
    if not is_root(messages):
        return f"answer to {message_text(messages[-1])}"
    turns = sum(1 for m in messages if m.get("role") == "assistant")
    if turns == 0:
        return "Fanning out over every item.\n" + fanout(FIRST, "first")
    if turns == 1:
        return "Then the second batch.\n" + fanout(SECOND, "second")
    return "```repl\nFINAL(f'{len(first) + len(second)} answers')\n```"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serve(home: Path, sim_url: str) -> Iterator[str]:
    """`rlm serve` on a loopback port with its store under ``home``; its base URL."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI", "RLM_"))}
    env.update(RLM_HOME=str(home), RLM_SIM_URL=sim_url, RLM_MODEL=MODEL)
    port = free_port()
    command = [sys.executable, "-m", "rlm_engine.cli.main", "serve", "--port", str(port)]
    log = (home / "server.log").open("wb")
    proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the server did not start: see {home / 'server.log'}")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def record_template(url: str) -> str:
    """The simulator run whose events every round replays; its run id."""
    with httpx.Client(base_url=url, timeout=60) as client:
        run_id: str = client.post("/v1/runs", json={"question": "fan out"}).json()["run_id"]
        deadline = time.monotonic() + 600
        while (status := client.get(f"/v1/runs/{run_id}").json()["status"]) != "completed":
            if status not in ("queued", "running") or time.monotonic() > deadline:
                raise SystemExit(f"the template run ended {status}")
            time.sleep(0.5)
    return run_id


@dataclass(frozen=True)
class Template:
    before: list[dict[str, Any]]
    """The events up to the second cell's iteration: about FIRST nodes."""
    live: list[dict[str, Any]]
    """The LIVE events after them."""


def split_template(store: Store, run_id: str) -> Template:
    bodies = [e.body for e in store.list_events(run_id)]
    cut = next(
        i
        for i, b in enumerate(bodies)
        if b["type"] == "iteration_started" and b["iteration"] == 2 and b["node_id"] == "r"
    )
    live = bodies[cut : cut + LIVE]
    assert len(live) == LIVE, f"only {len(live)} events after the cut"
    return Template(before=bodies[:cut], live=live)


_EVENTS = TypeAdapter[Event](Event)


def as_events(bodies: list[dict[str, Any]], run_id: str) -> list[Event]:
    return [_EVENTS.validate_python({**b, "run_id": run_id}) for b in bodies]


@dataclass(frozen=True)
class Round:
    first_render_ms: float
    loaded_ms: float
    nodes: int
    live_apply_ms: float
    live_wait_ms: float
    rows_in_dom: int


def one_round(browser: Any, url: str, store: Store, template: Template) -> Round:
    run_id = uuid.uuid4().hex[:16]
    store.create_run(NewRun(run_id=run_id, question="fan out", model=MODEL, sub_model=MODEL))
    before = as_events(template.before, run_id)
    for start in range(0, len(before), 2_000):
        store.append_events(before[start : start + 2_000])
    live = as_events(template.live, run_id)

    context = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        page = context.new_page()
        page.add_init_script(HOOK)
        page.goto(f"{url}/runs/{run_id}")
        loaded_ms = page.evaluate(WAIT_APPLIED, len(before))
        page.wait_for_function(
            "performance.getEntriesByName('rlm:tree-first-render').length > 0", timeout=60_000
        )
        first_ms = page.evaluate(
            "performance.getEntriesByName('rlm:tree-first-render')[0].startTime"
        )
        nodes = page.evaluate("window.__rlmTree.nodes")
        page.evaluate("window.__benchArmed = true")
        appended = page.evaluate("performance.now()")
        store.append_events(live)
        done_ms = page.evaluate(WAIT_APPLIED, len(before) + LIVE)
        chunks: list[float] = page.evaluate("window.__benchChunks")
        arrived = min(c for c in chunks if c >= appended)
        rows = page.locator('[data-testid="tree-row"]').count()
    finally:
        context.close()
        store.finish_run(run_id, status="completed", stop_reason="final", answer="")
    return Round(
        first_render_ms=first_ms,
        loaded_ms=loaded_ms,
        nodes=nodes,
        live_apply_ms=done_ms - arrived,
        live_wait_ms=done_ms - appended,
        rows_in_dom=rows,
    )


def chromium_version() -> str:
    done = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True, check=False)
    return done.stdout.strip()


def write_results(rounds: list[Round], template: Template, command: str) -> str:
    med = statistics.median
    load = os.getloadavg()[1]
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Web UI: the execution tree of a 5,000-node run in Chromium",
        "",
        f"Command: `{command}` ({now}, {platform.platform()}, {os.cpu_count()} cores shared "
        f"with other work, {chromium_version()} headless via Playwright; load average over "
        f"the last 5 minutes when the run ended: {load:.1f})",
        "",
        f"The events of one simulator run through `rlm serve` ({FIRST:,} sub-calls in one "
        f"cell, then {SECOND}) are replayed into a new run per round: the "
        f"{len(template.before):,} events before the second cell are stored when the run "
        f"page opens; the next {LIVE:,} are appended in one transaction once the tree is on "
        "screen, and the server streams them to the page together (it polls a run of "
        "another process every 0.5 s). Times are `performance.now()` in the page. "
        f"Median of {len(rounds)} rounds, each in a fresh browser context, 1280x800.",
        "",
        "## Medians",
        "",
        "| measure | value |",
        "|---|---|",
        f"| tree nodes when the page is loaded | {med(r.nodes for r in rounds):,.0f} |",
        "| first frame with tree rows (`rlm:tree-first-render`; the tree may still be "
        "partial), ms from navigation | "
        f"{med(r.first_render_ms for r in rounds):.0f} |",
        "| the whole 5,000-node tree on screen: every stored event applied "
        f"({len(template.before):,}), ms from navigation | "
        f"{med(r.loaded_ms for r in rounds):.0f} |",
        f"| {LIVE:,} live events applied, ms from their first chunk read | "
        f"{med(r.live_apply_ms for r in rounds):.0f} |",
        f"| {LIVE:,} live events applied, ms from the append (includes the server's poll) | "
        f"{med(r.live_wait_ms for r in rounds):.0f} |",
        f"| tree rows in the DOM | {med(r.rows_in_dom for r in rounds):.0f} |",
        "",
        "## Rounds",
        "",
        "| round | nodes | first render ms | all stored applied ms | live apply ms "
        "| live from append ms | rows in DOM |",
        "|---|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(rounds, 1):
        lines.append(
            f"| {i} | {r.nodes:,} | {r.first_render_ms:.0f} | {r.loaded_ms:.0f} "
            f"| {r.live_apply_ms:.0f} | {r.live_wait_ms:.0f} | {r.rows_in_dom} |"
        )
    lines += [
        "",
        "Live apply time covers parsing the stream, applying the events to the tree (the page "
        "batches them per animation frame) and the frame that shows them. The machine has 2 "
        "cores shared with other work (the server, this script and Chromium run on them "
        "too); the rounds show the spread.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with (
        tempfile.TemporaryDirectory(prefix="rlm-ui-bench-") as tmp,
        SimServerThread(None, policy) as sim,
        serve(Path(tmp), sim.url) as url,
    ):
        template_id = record_template(url)
        store = open_store(None, Path(tmp))
        try:
            template = split_template(store, template_id)
            rounds: list[Round] = []
            with sync_playwright() as playwright:
                # Run as root here, where Chromium's own sandbox cannot start.
                browser = playwright.chromium.launch(
                    executable_path=CHROMIUM, args=["--no-sandbox"]
                )
                for i in range(args.rounds):
                    rounds.append(one_round(browser, url, store, template))
                    print(f"round {i + 1}: {rounds[-1]}", flush=True)
                browser.close()
        finally:
            store.close()
    command = "uv run python benchmarks/ui_tree.py"
    if args.rounds != ROUNDS:
        command += f" --rounds {args.rounds}"
    text = write_results(rounds, template, command)
    args.out.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
