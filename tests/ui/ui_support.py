"""What the browser tests share: Debian's Chromium driven by Playwright, a simulator whose
sub-calls wait for the test, the runs the tests ask for, and the page's test ids
(docs/ui.md)."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from server_support import is_root

from rlm_engine.sim.policies import message_text

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator, Page, Playwright

CHROMIUM = "/usr/bin/chromium"
VIEWPORT = {"width": 1280, "height": 800}
# The machine runs tests as root, where Chromium's own sandbox cannot start.
CHROMIUM_ARGS = ["--no-sandbox"]
# A model genai-prices knows, served by the simulator (OPENAI_BASE_URL): runs get a cost.
PRICED_MODEL = "openai/gpt-4.1-mini"
STEP_MS = 60_000
"""How long a browser step may wait for the page (the machine is shared and slow)."""


def launch_chromium(playwright: Playwright) -> Browser:
    """Debian's Chromium, headless; no browser is downloaded."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def by_id(page: Page | Locator, name: str) -> Locator:
    return page.locator(f'[data-testid="{name}"]')


def row(page: Page | Locator, name: str, **data: str) -> Locator:
    """Elements of test id ``name`` whose ``data-*`` attributes have these values
    (``node_id="r/1/0"`` matches ``data-node-id="r/1/0"``)."""
    attrs = "".join(f'[data-{k.replace("_", "-")}="{v}"]' for k, v in data.items())
    return page.locator(f'[data-testid="{name}"]{attrs}')


def priced_env(sim_url: str) -> dict[str, str]:
    """Server settings that send PRICED_MODEL to the simulator."""
    return {"OPENAI_BASE_URL": sim_url, "OPENAI_API_KEY": "sim", "RLM_MODEL": PRICED_MODEL}


# -- a simulator whose sub-calls wait ------------------------------------------------------


class Gate:
    """Holds the simulator's sub-call replies until `open()`: while it is shut a run is in
    flight for as long as the test needs, with its sub-calls started and none finished."""

    def __init__(self, *, shut: bool = True) -> None:
        self._open = threading.Event()
        if not shut:
            self._open.set()
        self._lock = threading.Lock()
        self._held = 0

    @property
    def held(self) -> int:
        """Replies waiting now."""
        with self._lock:
            return self._held

    def open(self) -> None:
        self._open.set()

    async def wait(self) -> None:
        if self._open.is_set():
            return
        with self._lock:
            self._held += 1
        try:
            # Polled: a thread per held request would exhaust the loop's executor.
            while not self._open.is_set():
                await asyncio.sleep(0.02)
        finally:
            with self._lock:
                self._held -= 1


# -- the run the tests and screenshots ask for: error counts over a log file ---------------

SERVICES: tuple[str, ...] = ("auth", "billing", "checkout", "payments", "search")
CHUNKS = 8


def log_text(lines: int = 4_000) -> str:
    """A deterministic service log in which some lines carry error E42."""
    out: list[str] = []
    for i in range(lines):
        service = SERVICES[(i * 7) % len(SERVICES)]
        level = "ERROR E42" if i % 37 == 0 or (service == "payments" and i % 11 == 0) else "INFO"
        out.append(
            f"2026-11-30T{(i // 3600) % 24:02d}:{(i // 60) % 60:02d}:{i % 60:02d}Z "
            f"{service} {level} request {i:05d} handled in {(i * 13) % 900} ms"
        )
    return "\n".join(out) + "\n"


def e42_counts(text: str) -> dict[str, int]:
    counts: dict[str, int] = dict.fromkeys(SERVICES, 0)
    for line in text.splitlines():
        parts = line.split()
        if len(parts) > 3 and parts[2] == "ERROR" and parts[3] == "E42":
            counts[parts[1]] += 1
    return counts


def expected_answer(text: str) -> str:
    counts = e42_counts(text)
    top = max(counts, key=lambda s: counts[s])
    return f"{sum(counts.values())} E42 errors; most in {top} ({counts[top]})"


QUESTION = "How many E42 errors are in the log, and which service has the most?"

ROOT_SCAN = f"""The context is a service log. I will split it into {CHUNKS} chunks and ask a \
sub-model to count the E42 errors per service in each chunk, then add the counts up.

```repl
lines = context.splitlines()
size = len(lines) // {CHUNKS} + 1
chunks = ["\\n".join(lines[i:i + size]) for i in range(0, len(lines), size)]
prompts = [f"Count E42 errors per service as 'service=N' lines:\\n{{c}}" for c in chunks]
replies = llm_query_batched(prompts)
print(len(chunks), "chunks,", sum(len(c) for c in chunks), "chars")
for r in replies[:3]:
    print(r.replace("\\n", ", "))
```"""

ROOT_SUM = """Every chunk answered. Adding the per-service counts:

```repl
totals = {}
for reply in replies:
    for line in reply.splitlines():
        name, _, n = line.partition("=")
        totals[name] = totals.get(name, 0) + int(n)
top = max(totals, key=totals.get)
print(totals)
FINAL(f"{sum(totals.values())} E42 errors; most in {top} ({totals[top]})")
```"""


@dataclass(frozen=True)
class LogPolicy:
    """Root: one cell fanning the chunks out, then one that sums and answers. Sub-calls
    count E42 lines per service, each after the gate opens and ``delay_s`` more."""

    gate: Gate
    delay_s: float = 0.0

    async def __call__(self, model: str, messages: list[dict[str, Any]], /) -> str:
        if is_root(messages):
            turns = sum(1 for m in messages if m.get("role") == "assistant")
            return ROOT_SCAN if turns == 0 else ROOT_SUM
        await self.gate.wait()
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        counts = e42_counts(message_text(messages[-1]))
        return "\n".join(f"{s}={n}" for s, n in counts.items())


# -- a run of many sub-calls ------------------------------------------------------------------


def fanout_cell(count: int, prefix: str = "item") -> str:
    return (
        "```repl\n"
        f"out = llm_query_batched([f'{prefix} {{i}}' for i in range({count})])\n"
        "print(len(out))\n"
        "```"
    )


@dataclass(frozen=True)
class FanoutPolicy:
    """Root: one cell of ``count`` sub-calls, then FINAL; sub-calls answer at once (after
    the gate, when there is one)."""

    count: int
    gate: Gate | None = None

    async def __call__(self, model: str, messages: list[dict[str, Any]], /) -> str:
        if is_root(messages):
            turns = sum(1 for m in messages if m.get("role") == "assistant")
            return fanout_cell(self.count) if turns == 0 else FANOUT_FINISH
        if self.gate is not None:
            await self.gate.wait()
        return f"answer to {message_text(messages[-1])}"


FANOUT_FINISH = "```repl\nFINAL(f'{len(out)} answers')\n```"


# -- the command line, for a run the server does not own ----------------------------------------


def start_ask(
    env: Mapping[str, str], question: str, context: Path, log: Path
) -> subprocess.Popen[bytes]:
    """`rlm ask QUESTION --context FILE` in a subprocess on the server's store: a run not of
    the queue, so once its process dies it stays interrupted until someone resumes it."""
    command = [sys.executable, "-m", "rlm_engine.cli.main", "ask", question]
    command += ["--context", str(context), "--json"]
    with log.open("wb") as out:
        return subprocess.Popen(command, env=dict(env), stdout=out, stderr=subprocess.STDOUT)


_COST = re.compile(r"\$\s*([0-9]+(?:\.([0-9]+))?)")


def assert_cost_shown(text: str, usd: float) -> None:
    """``text`` shows the amount ``usd``, rounded to the digits it shows."""
    found = _COST.search(text.replace(",", ""))
    assert found, f"no dollar amount in {text!r} (expected about ${usd})"
    decimals = len(found.group(2) or "")
    assert abs(float(found.group(1)) - usd) <= 0.5 * 10**-decimals + 1e-12, (text, usd)
