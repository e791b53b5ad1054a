"""The main path in a real browser against `rlm serve` and the simulator: create a session
by uploading a file, ask a question in it, watch the tree grow while the run is in
flight, open a sub-call's detail, then see the answer and its cost on the run page and
the dashboard."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect
from server_support import server_env
from ui_support import (
    CHUNKS,
    PRICED_MODEL,
    QUESTION,
    STEP_MS,
    Gate,
    LogPolicy,
    assert_cost_shown,
    by_id,
    expected_answer,
    log_text,
    priced_env,
    row,
)

from rlm_engine.store.factory import open_store


def stored_event_types(env: dict[str, str], run_id: str) -> list[str]:
    store = open_store(env.get("RLM_STORE_URL"), Path(env["RLM_HOME"]))
    try:
        return [e.type for e in store.list_events(run_id)]
    finally:
        store.close()


# Records every state of the upload's progress bar: it is on screen only while the file
# goes up, and the page moves on to the session once it is created.
WATCH_PROGRESS = """
window.__progress = [];
new MutationObserver(() => {
  const bar = document.querySelector('[data-testid="session-upload-progress"]');
  if (bar) window.__progress.push([Number(bar.getAttribute("value")), Number(bar.max)]);
}).observe(document, {subtree: true, childList: true, attributes: true});
"""


def upload_session(page: Page, base_url: str, path: Path, name: str) -> str:
    """Create a session from ``path`` through the sessions page; its id."""
    page.add_init_script(WATCH_PROGRESS)
    page.goto(f"{base_url}/sessions")
    form = by_id(page, "session-create-form")
    expect(form).to_be_visible(timeout=STEP_MS)
    by_id(form, "session-name-input").fill(name)
    by_id(form, "session-mode-file").check()
    by_id(form, "session-file-input").set_input_files(str(path))
    by_id(form, "session-create-submit").click()
    session_page = by_id(page, "session-page")
    expect(session_page).to_be_visible(timeout=STEP_MS)
    session_id = session_page.get_attribute("data-session-id")
    assert session_id, "the session page names no session"
    progress: list[list[float]] = page.evaluate("window.__progress")
    size = path.stat().st_size
    assert progress, "no upload progress bar was shown"
    # Bytes of the request (the file and its multipart envelope); on loopback the page may
    # move on before a frame shows the bar full.
    assert all(0 <= loaded <= total and total >= size for loaded, total in progress), progress
    return session_id


@pytest.mark.timeout(300)
def test_upload_ask_watch_the_tree_grow_then_answer_and_cost(
    page: Page, launch: Any, sim_thread: Any, tmp_path: Path
) -> None:
    gate = Gate()
    sim = sim_thread(None, LogPolicy(gate))
    server = launch(server_env(tmp_path / "home", sim.url, **priced_env(sim.url)))
    log = tmp_path / "service.log"
    text = log_text()
    log.write_text(text, encoding="utf-8")

    session_id = upload_session(page, server.url, log, "service logs")
    expect(by_id(page, "session-name")).to_have_text("service logs")
    expect(by_id(page, "session-bytes")).to_be_visible()
    with server.client() as client:
        stored = client.get(f"/v1/sessions/{session_id}").json()
    assert stored["context_bytes"] == len(text.encode())
    assert stored["filename"] == "service.log"

    by_id(page, "ask-question").fill(QUESTION)
    by_id(page, "ask-submit").click()
    run_page = by_id(page, "run-page")
    expect(run_page).to_be_visible(timeout=STEP_MS)
    run_id = run_page.get_attribute("data-run-id")
    assert run_id

    # The sub-calls are held by the simulator: the run cannot end until the gate opens,
    # so every row seen now came from the live stream of a run still in flight.
    tree = by_id(page, "tree")
    subcalls = row(page, "tree-row", kind="llm")
    expect(subcalls).to_have_count(CHUNKS, timeout=STEP_MS)
    expect(by_id(page, "run-stream-state")).to_have_attribute("data-state", "live")
    statuses = {subcalls.nth(i).get_attribute("data-status") for i in range(CHUNKS)}
    assert statuses <= {"running", "queued"}, statuses
    expect(row(page, "tree-row", kind="cell")).to_have_count(1)
    assert int(tree.get_attribute("data-node-count") or 0) >= CHUNKS + 2
    with server.client() as client:
        run = client.get(f"/v1/runs/{run_id}").json()
    assert run["status"] == "running", run
    assert gate.held == CHUNKS
    assert "run_finished" not in stored_event_types(server.env, run_id)
    expect(run_page).to_have_attribute("data-status", "running")

    gate.open()
    expect(run_page).to_have_attribute("data-status", "completed", timeout=STEP_MS)
    answer = expected_answer(text)
    expect(by_id(page, "run-answer")).to_have_text(answer)
    expect(by_id(page, "run-stop-reason")).to_contain_text("final")
    expect(by_id(page, "run-stream-state")).to_have_attribute("data-state", "ended")
    expect(subcalls.first).to_have_attribute("data-status", "ok")
    with server.client() as client:
        run = client.get(f"/v1/runs/{run_id}").json()
    assert run["answer"] == answer
    cost = run["cost_usd"]
    assert cost is not None and cost > 0, run
    assert_cost_shown(by_id(page, "run-total-cost").inner_text(), cost)
    expect(by_id(page, "run-total-subcalls")).to_contain_text(str(CHUNKS))

    # A sub-call's detail: its model, tokens and cost.
    first = subcalls.first
    node_id = first.get_attribute("data-node-id")
    first.click()
    detail = by_id(page, "node-detail")
    expect(detail).to_have_attribute("data-node-id", node_id or "", timeout=STEP_MS)
    expect(detail).to_have_attribute("data-kind", "llm")
    meta = by_id(detail, "node-detail-meta")
    expect(meta).to_contain_text(PRICED_MODEL)
    with server.client() as client:
        nodes = client.get(f"/v1/runs/{run_id}/tree").json()["nodes"]
    node = next(n for n in nodes if n["node_id"] == node_id)
    expect(meta).to_contain_text(f"{node['input_tokens']:,} in")
    assert_cost_shown(meta.inner_text(), node["cost_usd"])

    # The dashboard: the run's cost under its model and its session.
    by_id(page, "nav-dashboard").click()
    expect(by_id(page, "dashboard-page")).to_be_visible(timeout=STEP_MS)
    model_row = row(page, "dash-model-row", model=PRICED_MODEL)
    expect(model_row).to_be_visible(timeout=STEP_MS)
    session_row = row(page, "dash-session-row", session=session_id)
    expect(session_row).to_be_visible()
    assert_cost_shown(by_id(page, "dash-total-cost").inner_text(), cost)
    assert_cost_shown(model_row.inner_text(), cost)
    expect(by_id(page, "dash-unpriced")).to_have_text("0")
    expect(by_id(page, "dash-inflight-empty")).to_be_visible()
