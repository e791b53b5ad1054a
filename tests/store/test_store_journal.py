"""The journal: model calls are recorded once and found again; cells move through states."""

from __future__ import annotations

import pytest
from store_support import new_run

from rlm_engine.store import (
    CellKey,
    CellStart,
    JournalConflictError,
    ModelCall,
    NodeStart,
    NotFoundError,
    RunNotFoundError,
    SqlStore,
    Usage,
    request_hash,
)


def _call(
    node_id: str = "r/t1", response: str = "```repl\nprint(1)\n```", **kw: object
) -> ModelCall:
    fields: dict[str, object] = {
        "run_id": "run-1",
        "node_id": node_id,
        "kind": "root_turn",
        "request_hash": request_hash({"messages": [{"role": "user", "content": "q"}]}),
        "response": response,
        "model": "openai/gpt-5-mini",
        "request": '{"messages": []}',
        "usage": Usage(100, 20, 50),
        "cost_usd": 0.001,
        "latency_s": 1.5,
        "meta": {"finish_reason": "stop"},
    }
    fields.update(kw)
    return ModelCall(**fields)  # type: ignore[arg-type]


def test_a_recorded_model_call_is_found_with_everything(store: SqlStore) -> None:
    new_run(store)
    assert store.find_model_call("run-1", "r/t1") is None
    recorded = store.record_model_call(_call())
    assert recorded == _call()
    assert store.find_model_call("run-1", "r/t1") == _call()
    node = store.get_node("run-1", "r/t1")
    assert node is not None and node.status == "completed" and node.usage == Usage(100, 20, 50)
    assert node.response_chars == len(_call().response)


def test_an_in_flight_call_is_not_journaled(store: SqlStore) -> None:
    new_run(store)
    node = store.start_node(
        NodeStart("run-1", "r/t1/llm0", "llm", parent_id="r/t1", request_hash="h", request="p")
    )
    assert node.status == "running"
    assert store.find_model_call("run-1", "r/t1/llm0") is None
    # After a crash the same node starts again and then completes.
    store.start_node(NodeStart("run-1", "r/t1/llm0", "llm", parent_id="r/t1", request_hash="h"))
    store.record_model_call(_call("r/t1/llm0", "sub answer", kind="llm", request_hash="h"))
    found = store.find_model_call("run-1", "r/t1/llm0")
    assert found is not None and found.response == "sub answer" and found.parent_id == "r/t1"
    with pytest.raises(JournalConflictError):
        store.start_node(NodeStart("run-1", "r/t1/llm0", "llm"))


def test_the_first_journaled_result_stands(store: SqlStore) -> None:
    new_run(store)
    first = store.record_model_call(_call(response="first"))
    again = store.record_model_call(_call(response="second"))
    assert again == first and again.response == "first"
    with pytest.raises(JournalConflictError, match="different request"):
        store.record_model_call(_call(request_hash="other"))


def test_long_texts_go_to_blobs_and_come_back(store: SqlStore) -> None:
    new_run(store)
    long_response = "é" * 50_000
    long_request = "p" * 70_000
    store.record_model_call(_call(response=long_response, request=long_request))
    found = store.find_model_call("run-1", "r/t1")
    assert found is not None
    assert found.response == long_response and found.request == long_request


def test_a_failed_call_is_journaled_too(store: SqlStore) -> None:
    new_run(store)
    store.record_model_call(_call(status="failed", response="", error="context_length"))
    found = store.find_model_call("run-1", "r/t1")
    assert found is not None and found.status == "failed" and found.error == "context_length"


def test_child_rlm_node_finishes_with_its_answer(store: SqlStore) -> None:
    new_run(store)
    store.start_node(NodeStart("run-1", "r/2", "rlm", parent_id=None, model="m"))
    node = store.finish_node(
        "run-1", "r/2", status="completed", response="child answer", usage=Usage(1, 2, 0)
    )
    assert node.status == "completed" and node.finished_at is not None
    found = store.find_model_call("run-1", "r/2")
    assert found is not None and found.response == "child answer" and found.kind == "rlm"
    with pytest.raises(JournalConflictError):
        store.finish_node("run-1", "r/2", status="failed")
    with pytest.raises(NotFoundError):
        store.finish_node("run-1", "never", status="failed")


def test_journal_writes_need_an_existing_run(store: SqlStore) -> None:
    with pytest.raises(RunNotFoundError):
        store.record_model_call(_call())
    with pytest.raises(RunNotFoundError):
        store.begin_cell(CellStart("run-1", "", 1, 0, "x = 1"))


def test_cell_lifecycle_with_hashes(store: SqlStore) -> None:
    new_run(store)
    start = CellStart("run-1", "", 1, 0, "print('hi')", instruction="count the lines")
    cell = store.begin_cell(start)
    assert cell.status == "executing" and cell.started_at is not None and cell.output is None
    assert cell.artifact_id == start.key.artifact_id
    done = store.finish_cell(start.key, status="completed", output="hi\n" * 2000)
    assert done.status == "completed" and done.output == "hi\n" * 2000
    assert done.output_chars == 6000 and done.output_hash and done.code_hash
    assert store.get_cell(start.key) == done
    # Same outcome again: idempotent. A different one, or beginning it again: conflict.
    assert store.finish_cell(start.key, status="completed", output="hi\n" * 2000) == done
    with pytest.raises(JournalConflictError):
        store.finish_cell(start.key, status="failed", output="boom")
    with pytest.raises(JournalConflictError):
        store.begin_cell(start)
    with pytest.raises(NotFoundError):
        store.finish_cell(CellKey("run-1", "", 9, 9), status="completed")


def test_a_cell_interrupted_mid_execution_is_begun_again(store: SqlStore) -> None:
    new_run(store)
    start = CellStart("run-1", "", 1, 0, "slow()")
    store.begin_cell(start)
    again = store.begin_cell(start)
    assert again.status == "executing"
    assert store.finish_cell(start.key, status="failed", error="Boom").error == "Boom"


def test_blocked_and_pending_cells(store: SqlStore) -> None:
    new_run(store)
    start = CellStart("run-1", "", 1, 1, "import os; os.system('rm -rf /')")
    assert store.begin_cell(start, status="pending").status == "pending"
    blocked = store.finish_cell(start.key, status="blocked", error="safety: shell command")
    assert blocked.status == "blocked" and blocked.started_at is None


def test_cells_and_tree_order(store: SqlStore) -> None:
    new_run(store)
    for node_id, iteration, index in [("", 1, 0), ("", 1, 1), ("r/1", 1, 0), ("", 2, 0)]:
        start = CellStart("run-1", node_id, iteration, index, f"c{iteration}{index}")
        store.begin_cell(start)
        store.finish_cell(start.key, status="completed", output=node_id)
    root_cells = store.list_cells("run-1", node_id="")
    assert [(c.iteration, c.cell_index) for c in root_cells] == [(1, 0), (1, 1), (2, 0)]
    assert len(store.list_cells("run-1")) == 4
    store.record_model_call(_call("t1"))
    store.start_node(NodeStart("run-1", "r/1", "rlm", parent_id="t1"))
    store.record_model_call(_call("r/1/t1", parent_id="r/1"))
    tree = store.run_tree("run-1")
    assert tree is not None and tree.run.run_id == "run-1"
    assert [n.node_id for n in tree.children(None)] == ["t1"]
    assert [n.node_id for n in tree.children("t1")] == ["r/1"]
    assert [n.node_id for n in tree.children("r/1")] == ["r/1/t1"]
    assert [c.code for c in tree.cells_of("r/1")] == ["c10"]
