"""Take the README's screenshots of the web UI from a real simulator run, 1280x800:
the run page mid-run and finished, and the dashboard.

    uv run python tests/ui/make_screenshots.py [--out docs/screenshots]

It starts the simulator on a thread, `rlm serve` on a loopback port with a fresh store,
creates a session by uploading a service log, asks two questions in it and drives the
pages in Debian's Chromium.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import sys
import tempfile
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(_HERE), str(_HERE.parent / "server")]


from server_support import is_root, server_env, start_server, wait_for  # noqa: E402
from ui_support import (  # noqa: E402
    PRICED_MODEL,
    QUESTION,
    STEP_MS,
    VIEWPORT,
    Gate,
    LogPolicy,
    by_id,
    launch_chromium,
    log_text,
    priced_env,
    row,
)

from rlm_engine.sim import SimServerThread  # noqa: E402

OUT = _HERE.parent.parent / "docs" / "screenshots"
ROOT_MODEL = "openai/gpt-4.1"
THIRD_MODEL = "openai/gpt-4o-mini"
THIRD_QUESTION = "List the request ids of the payments E42 errors."
SECOND_QUESTION = "Which service logged E42 errors most often, and how many did it log?"


class Paced:
    """The log policy, with sub-calls answering one after another once ``delay_s`` is set:
    mid-run, some are done and the rest still running."""

    def __init__(self) -> None:
        self.delay_s = 0.0
        self._answers = LogPolicy(Gate(shut=False))
        self._nth = itertools.count()

    async def __call__(self, model: str, messages: list[dict[str, Any]], /) -> str:
        if self.delay_s and not is_root(messages):
            await asyncio.sleep(self.delay_s * (next(self._nth) % 8 + 1))
        return await self._answers(model, messages)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)

    from playwright.sync_api import expect, sync_playwright

    policy = Paced()
    with tempfile.TemporaryDirectory() as tmp, SimServerThread(None, policy) as sim:
        home = Path(tmp)
        log = home / "service.log"
        log.write_text(log_text(12_000), encoding="utf-8")
        env = server_env(home / "home", sim.url, **priced_env(sim.url))
        # The root on a larger model than its sub-calls, as a deployment would run it.
        env.update(RLM_MODEL=ROOT_MODEL, RLM_SUB_MODEL=PRICED_MODEL)
        server = start_server(env, home)
        try:
            with sync_playwright() as playwright:
                browser = launch_chromium(playwright)
                page = browser.new_page(viewport=VIEWPORT)  # type: ignore[arg-type]

                # A session from an uploaded file, and a first run that finishes at once.
                page.goto(f"{server.url}/sessions")
                by_id(page, "session-name-input").fill("checkout-service logs")
                by_id(page, "session-mode-file").check()
                by_id(page, "session-file-input").set_input_files(str(log))
                by_id(page, "session-create-submit").click()
                expect(by_id(page, "session-page")).to_be_visible(timeout=STEP_MS)
                session_url = page.url
                by_id(page, "ask-question").fill(QUESTION)
                by_id(page, "ask-submit").click()
                run_page = by_id(page, "run-page")
                expect(run_page).to_have_attribute("data-status", "completed", timeout=STEP_MS)

                # A second run whose sub-calls answer slowly: the run page mid-run.
                policy.delay_s = 0.6
                page.goto(session_url)
                by_id(page, "ask-question").fill(SECOND_QUESTION)
                by_id(page, "ask-submit").click()
                expect(run_page).to_have_attribute("data-status", "running", timeout=STEP_MS)
                done = row(page, "tree-row", kind="llm", status="ok")
                wait_for(lambda: done.count() >= 3, "some sub-calls done", timeout_s=60)
                page.wait_for_timeout(300)
                page.screenshot(path=str(out / "run-live.png"))

                expect(run_page).to_have_attribute("data-status", "completed", timeout=STEP_MS)
                expect(by_id(page, "run-stream-state")).to_have_attribute("data-state", "ended")
                cell = row(page, "tree-row", kind="cell").first
                cell.click()
                expect(by_id(page, "node-detail")).to_be_visible(timeout=STEP_MS)
                page.wait_for_timeout(300)
                page.screenshot(path=str(out / "run-finished.png"))

                # A third run, still going while the dashboard is taken: runs in flight.
                policy.delay_s = 3.0
                page.goto(session_url)
                by_id(page, "ask-question").fill(THIRD_QUESTION)
                by_id(page, "ask-model").fill(THIRD_MODEL)
                by_id(page, "ask-submit").click()
                expect(run_page).to_have_attribute("data-status", "running", timeout=STEP_MS)
                by_id(page, "nav-dashboard").click()
                expect(by_id(page, "dashboard-page")).to_be_visible(timeout=STEP_MS)
                expect(by_id(page, "dash-inflight-row")).to_have_count(1, timeout=STEP_MS)
                models = by_id(page, "dash-model-row")
                wait_for(lambda: models.count() == 3, "three models on the dashboard")
                page.wait_for_timeout(500)
                page.screenshot(path=str(out / "dashboard.png"))
                browser.close()
        finally:
            server.stop()
    for name in ("run-live.png", "run-finished.png", "dashboard.png"):
        print(out / name)


if __name__ == "__main__":
    main()
