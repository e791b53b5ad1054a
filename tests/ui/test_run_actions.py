"""A run's actions from its page: cancel a run in flight, resume an interrupted one, and
download its notebook (a valid nbformat 4 notebook of the run's cells)."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import nbformat
import pytest
from playwright.sync_api import Page, expect
from server_support import server_env, wait_for
from ui_support import (
    CHUNKS,
    QUESTION,
    ROOT_SCAN,
    STEP_MS,
    FanoutPolicy,
    Gate,
    LogPolicy,
    by_id,
    expected_answer,
    log_text,
    row,
    start_ask,
)

from rlm_engine.store.factory import open_store


def submit(server: Any, question: str, **fields: Any) -> str:
    with server.client() as client:
        reply = client.post("/v1/runs", json={"question": question, **fields})
    assert reply.status_code == 202, reply.text
    run_id: str = reply.json()["run_id"]
    return run_id


def started_subcalls(env: dict[str, str]) -> int:
    """Sub-calls started by the store's one run, as its stored events say."""
    store = open_store(env.get("RLM_STORE_URL"), Path(env["RLM_HOME"]))
    try:
        runs = store.list_runs(2)
        assert len(runs) <= 1, runs
        events = store.list_events(runs[0].run_id) if runs else []
    finally:
        store.close()
    return sum(1 for e in events if e.type == "subcall_started")


def run_status(server: Any, run_id: str) -> str:
    with server.client() as client:
        status: str = client.get(f"/v1/runs/{run_id}").json()["status"]
    return status


@pytest.mark.timeout(240)
def test_cancel_a_run_in_flight(page: Page, launch: Any, sim_thread: Any, tmp_path: Path) -> None:
    gate = Gate()  # never opened: the run stays in flight until it is cancelled
    sim = sim_thread(None, FanoutPolicy(16, gate))
    server = launch(server_env(tmp_path / "home", sim.url))
    run_id = submit(server, "a run to cancel")

    page.goto(f"{server.url}/runs/{run_id}")
    run_page = by_id(page, "run-page")
    expect(row(page, "tree-row", kind="llm")).to_have_count(16, timeout=STEP_MS)
    cancel = by_id(page, "run-action-cancel")
    resume = by_id(page, "run-action-resume")
    expect(cancel).to_be_enabled()
    expect(resume).to_be_disabled()
    cancel.click()

    expect(run_page).to_have_attribute("data-status", "cancelled", timeout=STEP_MS)
    expect(by_id(page, "run-status")).to_contain_text("cancelled")
    expect(by_id(page, "run-stop-reason")).to_contain_text("cancelled")
    expect(cancel).to_be_disabled()
    expect(resume).to_be_enabled()
    assert run_status(server, run_id) == "cancelled"
    # The sub-calls that were waiting were closed as failed, not left spinning.
    expect(row(page, "tree-row", kind="llm", status="running")).to_have_count(0)
    expect(by_id(page, "run-stream-state")).to_have_attribute("data-state", "ended")

    # The runs list shows it cancelled too.
    by_id(page, "nav-runs").click()
    expect(row(page, "run-row", run_id=run_id)).to_have_attribute(
        "data-status", "cancelled", timeout=STEP_MS
    )


@pytest.mark.timeout(300)
def test_resume_an_interrupted_run_then_download_its_notebook(
    page: Page, launch: Any, sim_thread: Any, tmp_path: Path
) -> None:
    gate = Gate()
    sim = sim_thread(None, LogPolicy(gate))
    env = server_env(tmp_path / "home", sim.url)
    server = launch(env)
    log = tmp_path / "service.log"
    text = log_text()
    log.write_text(text, encoding="utf-8")

    # A run of the command line on the server's store, killed with its sub-calls in
    # flight: nothing resumes it by itself.
    ask = start_ask(env, QUESTION, log, tmp_path / "ask.log")
    try:
        wait_for(lambda: gate.held == CHUNKS, "the run's sub-calls at the simulator")
        wait_for(lambda: started_subcalls(env) == CHUNKS, "the sub-calls' events stored")
    finally:
        os.kill(ask.pid, signal.SIGKILL)
        ask.wait(timeout=30)
    gate.open()

    page.goto(f"{server.url}/runs")
    interrupted = row(page, "run-row", status="interrupted")
    expect(interrupted).to_have_count(1, timeout=STEP_MS)
    run_id = interrupted.get_attribute("data-run-id")
    assert run_id
    by_id(interrupted, "run-row-link").click()

    run_page = by_id(page, "run-page")
    expect(run_page).to_have_attribute("data-run-id", run_id, timeout=STEP_MS)
    expect(run_page).to_have_attribute("data-status", "interrupted")
    # What the killed process recorded is on the page before the resume.
    expect(row(page, "tree-row", kind="llm")).to_have_count(CHUNKS, timeout=STEP_MS)
    resume = by_id(page, "run-action-resume")
    expect(resume).to_be_enabled()
    resume.click()

    expect(run_page).to_have_attribute("data-status", "completed", timeout=STEP_MS)
    answer = expected_answer(text)
    expect(by_id(page, "run-answer")).to_have_text(answer)
    expect(row(page, "tree-row", kind="llm", status="ok")).to_have_count(CHUNKS)
    with server.client() as client:
        run = client.get(f"/v1/runs/{run_id}").json()
    assert run["status"] == "completed" and run["answer"] == answer, run
    assert run["attempt"] == 2, run

    # The notebook export, as the browser downloads it.
    with page.expect_download(timeout=STEP_MS) as download:
        by_id(page, "run-download-ipynb").click()
    target = tmp_path / "run.ipynb"
    download.value.save_as(target)
    assert download.value.suggested_filename.endswith(".ipynb")
    notebook = nbformat.read(str(target), as_version=4)
    nbformat.validate(notebook)
    code = [c.source for c in notebook.cells if c.cell_type == "code"]
    assert any("llm_query_batched(prompts)" in c for c in code), code
    assert any("FINAL(" in c for c in code), code
    assert ROOT_SCAN.splitlines()[0][:40] in "\n".join(c.source for c in notebook.cells)
