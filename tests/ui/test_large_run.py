"""A run of 5,000 sub-calls: the tree holds every node but renders only the rows in view,
and the page still scrolls, selects and collapses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect
from server_support import server_env, wait_for
from ui_support import STEP_MS, FanoutPolicy, by_id, row

SUBCALLS = 5_000
# Rows a 800-pixel viewport can show, with generous overscan: far below the node count.
MOST_ROWS = 300


@pytest.mark.timeout(360)
def test_a_5000_node_tree_renders_a_bounded_window_and_stays_usable(
    page: Page, launch: Any, sim_thread: Any, tmp_path: Path
) -> None:
    sim = sim_thread(None, FanoutPolicy(SUBCALLS))
    server = launch(server_env(tmp_path / "home", sim.url))
    with server.client() as client:
        run_id = client.post("/v1/runs", json={"question": "fan out"}).json()["run_id"]

        def finished() -> bool:
            status = client.get(f"/v1/runs/{run_id}").json()["status"]
            assert status in ("queued", "running", "completed"), status
            return status == "completed"

        wait_for(finished, "the 5,000 sub-calls", timeout_s=240, server=server)
        nodes = client.get(f"/v1/runs/{run_id}/tree").json()["nodes"]
    assert sum(1 for n in nodes if n["kind"] == "llm") == SUBCALLS

    page.goto(f"{server.url}/runs/{run_id}")
    tree = by_id(page, "tree")
    expect(by_id(page, "run-page")).to_have_attribute("data-status", "completed", timeout=STEP_MS)
    expect(by_id(page, "run-stream-state")).to_have_attribute(
        "data-state", "ended", timeout=STEP_MS * 2
    )

    def node_count() -> int:
        return int(tree.get_attribute("data-node-count") or 0)

    wait_for(lambda: node_count() >= SUBCALLS, "every node in the tree", timeout_s=120)
    by_id(page, "tree-expand-all").click()
    rendered = by_id(page, "tree-row").count()
    visible = int(tree.get_attribute("data-visible-count") or 0)
    assert 0 < rendered <= MOST_ROWS, rendered
    # Every node is a row of the expanded tree, and only a window of them is in the DOM.
    assert visible >= SUBCALLS, visible

    # Scroll to the end: the last sub-call's row is rendered, the first is not, and the
    # number of rows in the DOM stays bounded.
    last = row(page, "tree-row", node_id=f"r/1/{SUBCALLS - 1}")
    first = row(page, "tree-row", node_id="r/1/0")
    expect(first).to_have_count(1)
    expect(last).to_have_count(0)
    tree.evaluate("el => { el.scrollTop = el.scrollHeight; }")
    expect(last).to_have_count(1, timeout=STEP_MS)
    expect(first).to_have_count(0)
    assert by_id(page, "tree-row").count() <= MOST_ROWS

    # The page answers a click at the far end: the detail of the last sub-call.
    last.click()
    detail = by_id(page, "node-detail")
    expect(detail).to_have_attribute("data-node-id", f"r/1/{SUBCALLS - 1}", timeout=STEP_MS)
    expect(detail).to_have_attribute("data-kind", "llm")
    expect(last).to_have_attribute("aria-selected", "true")

    # Collapsing hides the 5,000 rows under their cell; expanding brings them back.
    tree.evaluate("el => { el.scrollTop = 0; }")
    by_id(page, "tree-collapse-all").click()
    expect(row(page, "tree-row", kind="llm")).to_have_count(0, timeout=STEP_MS)
    assert int(tree.get_attribute("data-node-count") or 0) >= SUBCALLS
    by_id(page, "tree-expand-all").click()
    expect(first).to_have_count(1, timeout=STEP_MS)
