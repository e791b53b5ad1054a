"""Exporting a recorded run: a notebook that validates and re-executes offline to the
recorded outputs, JSONL and Markdown. The run is a real one: the engine with scripted
models, its journal in the store, its events recorded as `rlm ask` records them."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from rlm_engine import RLM
from rlm_engine.engine.journal_store import StoreJournal
from rlm_engine.events import Event
from rlm_engine.lm.scripted import ScriptedModel
from rlm_engine.store import CellStart, NewRun, SqlStore, export_context, open_store
from rlm_engine.store.export import export_run, write_export
from rlm_engine.store.export_recording import RootCell, load_recording
from rlm_engine.store.export_replay import setup_cell_source
from rlm_engine.types import Message

QUESTION = "Shout the context, and count its words."
ROOT_TURNS = [
    "Let me look at the context first.\n"
    "```repl\nwords = context.split()\nprint(len(words))\n"
    "import sys\nprint('to stderr', file=sys.stderr)\nwords\n```\n"
    "Three words, it seems.",
    "I will shout every word with a sub-model, all at once, and ask a child to count.\n"
    "```repl\nanswers = llm_query_batched([f'upper: {w}' for w in words])\n"
    "one = llm_query('upper: end')\n"
    "count = rlm_query('How many words?', context)\n"
    "print(answers, one, count)\nSHOW_VARS()\n```\n"
    "And a check that fails on purpose:\n"
    "```repl\nprint('checking')\nraise ValueError('not loud enough')\n```",
    "Done.\n```repl\nFINAL(' '.join(answers) + ' / ' + one + ' / ' + count)\n```",
]
CHILD_TURNS = ["```repl\nFINAL(len(context.split()))\n```"]


def _turn(messages: list[Message]) -> str:
    done = sum(m.role == "assistant" for m in messages)
    child = any("How many words?" in m.content for m in messages if m.role == "user")
    turns = CHILD_TURNS if child else ROOT_TURNS
    return turns[min(done, len(turns) - 1)]


def _sub(messages: list[Message]) -> str:
    return messages[-1].content.removeprefix("upper: ").upper()


def record_run(store: SqlStore, context_file: Path, run_id: str = "run-export") -> str:
    """A real run, recorded as `rlm ask` records one: run row with its settings first,
    then the journal (StoreJournal) and every event."""
    store.create_run(
        NewRun(
            run_id=run_id,
            question=QUESTION,
            model="scripted/default",
            sub_model="scripted/default",
            settings={"context": [str(context_file)], "max_depth": 2},
        )
    )

    def on_event(event: Event) -> None:
        store.append_event(event)

    rlm = RLM(ScriptedModel(_turn), ScriptedModel(_sub), max_depth=2, on_event=on_event)

    async def go() -> Any:
        try:
            return await rlm.arun(
                QUESTION, context_file, run_id=run_id, journal=StoreJournal(store, run_id)
            )
        finally:
            await rlm.aclose()

    result = asyncio.run(go())
    assert result.answer == "A QUIET DAY / END / 3", result.stop_detail
    store.finish_run(run_id, status="completed", stop_reason="final", answer=result.answer)
    return run_id


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SqlStore, str]]:
    home = tmp_path_factory.mktemp("export_home")
    context_file = home / "context.txt"
    context_file.write_text("a quiet day", encoding="utf-8")
    store = open_store(None, home)
    run_id = record_run(store, context_file)
    yield store, run_id
    store.close()


def _normalised(outputs: list[Any]) -> list[dict[str, Any]]:
    """Outputs compared by meaning: adjacent stream chunks joined (the kernel may flush a
    stream in pieces); an error by its exception name and message (the kernel colours and
    frames its traceback differently from the REPL)."""
    result: list[dict[str, Any]] = []
    for raw in outputs:
        out = dict(raw)
        if out["output_type"] == "stream":
            last = result[-1] if result else None
            if last and last["output_type"] == "stream" and last["name"] == out["name"]:
                last["text"] += out["text"]
                continue
            result.append({"output_type": "stream", "name": out["name"], "text": out["text"]})
        elif out["output_type"] == "error":
            result.append({"output_type": "error", "ename": out["ename"], "evalue": out["evalue"]})
        else:
            result.append(out)
    return result


def test_notebook_validates_and_has_reasoning_cells_and_replay_cell(
    recorded: tuple[SqlStore, str],
) -> None:
    store, run_id = recorded
    notebook = nbformat.reads(export_run(store, run_id, "ipynb"), as_version=4)
    nbformat.validate(notebook)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    markdown = "\n".join(c.source for c in notebook.cells if c.cell_type == "markdown")
    assert code[0].metadata["rlm"]["role"] == "replay-setup"
    for name in ("llm_query", "llm_query_batched", "rlm_query", "rlm_query_batched"):
        assert f"def {name}(" in code[0].source
    for name in ("FINAL", "FINAL_VAR", "SUBMIT", "SHOW_VARS"):
        assert f"def {name}(" in code[0].source
    assert "context = 'a quiet day'" in code[0].source
    # The root's reasoning is prose; its code is in code cells, not in the markdown.
    assert "Let me look at the context first." in markdown
    assert "Three words, it seems." in markdown
    assert "And a check that fails on purpose:" in markdown
    assert "```repl" not in markdown and "words = context.split()" not in markdown
    cells = [c for c in store.list_cells(run_id) if c.node_id.count("/") == 1]
    assert [c.source for c in code[1:]] == [c.code for c in cells]
    assert code[1].outputs[0]["text"] == "3\nto stderr\n['a', 'quiet', 'day']\n"
    failed = code[3]
    assert failed.metadata["tags"] == ["raises-exception"]
    assert failed.outputs[-1]["ename"] == "ValueError"
    assert failed.outputs[-1]["evalue"] == "not loud enough"
    assert "A QUIET DAY / END / 3" in notebook.cells[-1].source


def test_notebook_reexecutes_offline_to_the_recorded_outputs(
    recorded: tuple[SqlStore, str],
) -> None:
    store, run_id = recorded
    notebook = nbformat.reads(export_run(store, run_id, "ipynb"), as_version=4)
    recorded_outputs = [copy.deepcopy(c.outputs) for c in notebook.cells if c.cell_type == "code"]
    # One more cell reads what FINAL recorded during the replay.
    notebook.cells.append(nbformat.v4.new_code_cell("print(_rlm_final['answer'])"))
    NotebookClient(notebook, kernel_name="python3", timeout=120).execute()
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert len(code) == len(recorded_outputs) + 1
    for index, (cell, expected) in enumerate(zip(code, recorded_outputs, strict=False)):
        assert _normalised(cell.outputs) == _normalised(expected), f"code cell {index}"
    assert code[2].outputs[0]["text"].startswith("['A', 'QUIET', 'DAY'] END 3\n")
    assert _normalised(code[-1].outputs) == [
        {"output_type": "stream", "name": "stdout", "text": "A QUIET DAY / END / 3\n"}
    ]


def test_setup_cell_hands_out_results_in_run_order_outside_ipython(
    recorded: tuple[SqlStore, str],
) -> None:
    store, run_id = recorded
    notebook = nbformat.reads(export_run(store, run_id, "ipynb"), as_version=4)
    namespace: dict[str, Any] = {}
    exec(notebook.cells[1].source, namespace)
    assert namespace["context"] == "a quiet day"
    assert namespace["llm_query_batched"](["a", "b", "c"]) == ["A", "QUIET", "DAY"]
    assert namespace["llm_query"]("anything") == "END"
    assert namespace["rlm_query"]("child") == "3"
    with pytest.raises(RuntimeError, match="no recorded result left"):
        namespace["llm_query"]("one call too many")
    namespace["FINAL_VAR"]("context")
    assert namespace["_rlm_final"] == {"kind": "final", "answer": "a quiet day"}


def test_sub_call_results_come_from_the_journal_in_node_order(
    recorded: tuple[SqlStore, str],
) -> None:
    store, run_id = recorded
    cells = [s for s in load_recording(store, run_id).steps if isinstance(s, RootCell)]
    assert [(r.kind, r.value) for r in cells[1].results] == [
        ("llm", "A"),
        ("llm", "QUIET"),
        ("llm", "DAY"),
        ("llm", "END"),
        ("rlm", "3"),
    ]


def test_export_is_deterministic(recorded: tuple[SqlStore, str]) -> None:
    store, run_id = recorded
    assert export_run(store, run_id, "ipynb") == export_run(store, run_id, "ipynb")


def test_jsonl_has_every_event_then_every_cell(
    recorded: tuple[SqlStore, str], tmp_path: Path
) -> None:
    store, run_id = recorded
    path = write_export(store, run_id, "jsonl", tmp_path / "out" / "run.jsonl")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    events = store.list_events(run_id)
    cells = store.list_cells(run_id)
    assert len(rows) == len(events) + len(cells)
    assert [r["record"] for r in rows] == ["event"] * len(events) + ["cell"] * len(cells)
    assert [r["seq"] for r in rows[: len(events)]] == [e.seq for e in events]
    assert rows[0]["type"] == "run_started" and rows[len(events) - 1]["type"] == "run_finished"
    assert {r["artifact_id"] for r in rows[len(events) :]} == {c.artifact_id for c in cells}
    child_cells = [r for r in rows if r["record"] == "cell" and r["node_id"].count("/") > 1]
    assert child_cells, "the child RLM's cells are part of the audit trail"


def test_markdown_has_question_reasoning_cells_outputs_and_answer(
    recorded: tuple[SqlStore, str],
) -> None:
    store, run_id = recorded
    text = export_run(store, run_id, "md")
    for part in (
        QUESTION,
        "Let me look at the context first.",
        "words = context.split()",
        "3\nto stderr\n['a', 'quiet', 'day']",
        "ValueError: not loud enough",
        "## Answer\n\nA QUIET DAY / END / 3",
    ):
        assert part in text
    assert "```repl" not in text


def test_unfinished_and_blocked_cells_are_shown_not_run(tmp_path: Path) -> None:
    store = open_store(None, tmp_path)
    store.create_run(NewRun(run_id="cut", question="q", model="m"))
    store.begin_cell(CellStart("cut", "r/1", 1, 0, "print('never finished')"))
    store.begin_cell(CellStart("cut", "r/2", 1, 1, "import os"), status="pending")
    store.finish_cell(CellStart("cut", "r/2", 1, 1, "").key, status="blocked", error="no os")
    notebook = nbformat.reads(export_run(store, "cut", "ipynb"), as_version=4)
    nbformat.validate(notebook)
    assert [c.cell_type for c in notebook.cells].count("code") == 1  # the replay cell only
    markdown = "\n".join(c.source for c in notebook.cells if c.cell_type == "markdown")
    assert "**executing**" in markdown and "print('never finished')" in markdown
    assert "**blocked**" in markdown and "no os" in markdown
    assert "context = None  # the run had no context" in notebook.cells[1].source
    store.close()


def _context_of(lines: list[str]) -> Any:
    namespace: dict[str, Any] = {}
    exec(setup_cell_source("r", [], lines), namespace)
    return namespace["context"]


def test_context_is_rebuilt_the_way_the_repl_loaded_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_store(None, tmp_path / "home")
    text = tmp_path / "a.txt"
    text.write_bytes(b"line one\r\nline two\n")
    data = tmp_path / "b.json"
    data.write_text('{"k": [1, 2]}', encoding="utf-8")
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "x.md").write_text("x", encoding="utf-8")

    def lines_for(paths: list[Path]) -> list[str]:
        run_id = f"ctx{len(store.list_runs())}"
        settings = {"context": [str(p) for p in paths]}
        run = store.create_run(NewRun(run_id=run_id, question="q", settings=settings))
        return export_context.context_lines(store, run)

    assert _context_of(lines_for([text])) == "line one\r\nline two\n"
    assert _context_of(lines_for([data])) == {"k": [1, 2]}
    assert _context_of(lines_for([text, data])) == ["line one\r\nline two\n", '{"k": [1, 2]}']
    assert _context_of(lines_for([folder])).files() == ["x.md"]
    monkeypatch.setattr(export_context, "INLINE_LIMIT", 4)
    large = lines_for([text])
    assert str(text) in large[0] and _context_of(large) == "line one\r\nline two\n"
    text.unlink()
    gone = lines_for([text])
    assert _context_of(gone) is None and "is gone" in gone[0]
    store.close()
