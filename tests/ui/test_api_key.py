"""Once the server has a key, the UI asks for one, refuses a wrong one, and keeps the
right one for this browser session only (sessionStorage, never localStorage)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Page, expect
from server_support import create_key, server_env
from ui_support import STEP_MS, VIEWPORT, FanoutPolicy, by_id, row

STORAGE_KEY = "rlm.apiKey"


def test_the_ui_asks_for_a_key_and_keeps_it_for_the_session_only(
    page: Page, browser: Browser, launch: Any, sim_thread: Any, tmp_path: Path
) -> None:
    sim = sim_thread(None, FanoutPolicy(2))
    env = server_env(tmp_path / "home", sim.url)
    secret = create_key(env, "acme")
    other = create_key(env, "umbrella")
    server = launch(env)
    with server.client(secret) as client:
        mine = client.post("/v1/runs", json={"question": "acme's run"}).json()["run_id"]
    with server.client(other) as client:
        theirs = client.post("/v1/runs", json={"question": "umbrella's run"}).json()["run_id"]

    page.goto(f"{server.url}/runs")
    dialog = by_id(page, "apikey-dialog")
    expect(dialog).to_be_visible(timeout=STEP_MS)
    expect(row(page, "run-row")).to_have_count(0)

    by_id(dialog, "apikey-input").fill("rlm_0000000000000000_not-a-key-at-all-000000")
    by_id(dialog, "apikey-submit").click()
    expect(by_id(page, "apikey-error")).to_be_visible(timeout=STEP_MS)
    expect(dialog).to_be_visible()

    by_id(dialog, "apikey-input").fill(secret)
    by_id(dialog, "apikey-submit").click()
    expect(dialog).to_be_hidden(timeout=STEP_MS)
    expect(row(page, "run-row", run_id=mine)).to_have_count(1, timeout=STEP_MS)
    # The key's tenant sees its own runs only.
    expect(row(page, "run-row", run_id=theirs)).to_have_count(0)

    assert page.evaluate(f"sessionStorage.getItem('{STORAGE_KEY}')") == secret
    stored = page.evaluate(
        "Object.keys(localStorage).map(k => localStorage.getItem(k)).join('\\n')"
    )
    assert secret not in stored
    # A reload in the same session keeps the key: no prompt.
    page.reload()
    expect(row(page, "run-row", run_id=mine)).to_have_count(1, timeout=STEP_MS)
    expect(by_id(page, "apikey-dialog")).to_be_hidden()

    # Another browser session has no key: it is asked again.
    fresh = browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
    try:
        tab = fresh.new_page()
        tab.goto(f"{server.url}/runs")
        expect(by_id(tab, "apikey-dialog")).to_be_visible(timeout=STEP_MS)
    finally:
        fresh.close()

    # Forgetting the key asks for one again.
    by_id(page, "apikey-forget").click()
    expect(by_id(page, "apikey-dialog")).to_be_visible(timeout=STEP_MS)
    assert page.evaluate(f"sessionStorage.getItem('{STORAGE_KEY}')") is None
