"""Export a run as a Jupyter notebook (nbformat 4), validated before it is written.

Layout: a title cell; the replay cell (see `export_replay`); then, in run order, the root
model's reasoning as markdown and each root REPL cell as a code cell carrying the output
the run recorded; the answer last. Cell ids are derived from node ids, so exporting the
same run twice gives the same file (diffable).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from rlm_engine.store.export_context import context_lines
from rlm_engine.store.export_recording import Recording, RootCell, RootTurn
from rlm_engine.store.export_replay import setup_cell_source
from rlm_engine.store.protocol import Store
from rlm_engine.store.records import Cell

NBFORMAT_MINOR = 5
_KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}
_EXCEPTION_LINE = re.compile(r"(?P<name>[A-Za-z_][\w.]*)(?::\s?(?P<value>.*))?")


def fence(text: str, lang: str = "") -> str:
    """`text` in a fenced block whose fence is longer than any backtick run inside it."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    ticks = "`" * max(3, longest + 1)
    return f"{ticks}{lang}\n{text.rstrip()}\n{ticks}"


def _cell_id(prefix: str, node_id: str = "") -> str:
    return f"{prefix}-{node_id.replace('/', '-')}" if node_id else prefix


def _markdown(cell_id: str, text: str) -> dict[str, Any]:
    return {"cell_type": "markdown", "id": cell_id, "metadata": {}, "source": text}


def error_output(error: str) -> dict[str, Any]:
    """An `error` output from a recorded traceback; its last line names the exception."""
    lines = [line for line in error.strip().splitlines() if line.strip()]
    last = lines[-1] if lines else "Error"
    match = _EXCEPTION_LINE.fullmatch(last)
    name, value = ("Error", last) if match is None else (match["name"], match["value"] or "")
    return {
        "output_type": "error",
        "ename": name,
        "evalue": value,
        "traceback": error.rstrip("\n").splitlines(),
    }


def recorded_outputs(cell: Cell) -> list[dict[str, Any]]:
    """The outputs the REPL produced: one stdout stream (it merged stderr), then the error."""
    outputs: list[dict[str, Any]] = []
    if cell.output:
        outputs.append({"output_type": "stream", "name": "stdout", "text": cell.output})
    if cell.status == "failed" and cell.error:
        outputs.append(error_output(cell.error))
    return outputs


def _code_cell(step: RootCell, count: int) -> dict[str, Any]:
    cell = step.cell
    metadata: dict[str, Any] = {
        "rlm": {
            "artifact_id": cell.artifact_id,
            "node_id": cell.node_id,
            "iteration": cell.iteration,
            "cell_index": cell.cell_index,
            "status": cell.status,
            "code_hash": cell.code_hash,
            "output_hash": cell.output_hash,
            "sub_calls": len(step.results),
        }
    }
    if cell.instruction:
        metadata["rlm"]["instruction"] = cell.instruction
    if cell.status == "failed":
        # The run's cell raised; nbclient and `jupyter nbconvert --execute` go on past it.
        metadata["tags"] = ["raises-exception"]
    return {
        "cell_type": "code",
        "id": _cell_id("cell", cell.node_id),
        "metadata": metadata,
        "execution_count": count,
        "source": cell.code,
        "outputs": recorded_outputs(cell),
    }


def _shown_only(step: RootCell) -> dict[str, Any]:
    """A cell the notebook cannot re-run (blocked, killed, timed out, cut off by a crash)."""
    cell = step.cell
    state = str(cell.meta.get("cell_status") or cell.status)
    parts = [f"Cell {cell.iteration}.{cell.cell_index + 1} was **{state}**; shown, not run:"]
    parts.append(fence(cell.code, "python"))
    if cell.output:
        parts.append(fence(cell.output, "text"))
    if cell.error:
        parts.append(fence(cell.error, "text"))
    return _markdown(_cell_id("cell", cell.node_id), "\n\n".join(parts))


def _title(recording: Recording) -> dict[str, Any]:
    run = recording.run
    totals = run.totals
    cost = "unknown" if totals.cost_usd is None else f"${totals.cost_usd:.4f}"
    question = "\n".join(f"> {line}" for line in run.question.splitlines() or [""])
    text = (
        f"# RLM run `{run.run_id}`\n\n{question}\n\n"
        f"Model `{run.model}` (sub-calls `{run.sub_model}`); status **{run.status}**, "
        f"stop reason `{run.stop_reason}`; {totals.iterations} iterations, "
        f"{totals.input_tokens:,} input and {totals.output_tokens:,} output tokens, "
        f"cost {cost}.\n\n"
        "Run all cells in order: the first one defines `context` and answers every "
        "`llm_query` / `rlm_query` from the run's recorded results, so no model is called."
    )
    return _markdown("title", text)


def _answer(recording: Recording) -> dict[str, Any]:
    run = recording.run
    body = run.answer if run.answer is not None else "*(the run gave no answer)*"
    detail = f" ({run.detail})" if run.detail else ""
    text = f"## Answer\n\n{body}\n\nStop reason: `{run.stop_reason}`{detail}."
    return _markdown("answer", text)


def build_notebook(store: Store, recording: Recording) -> dict[str, Any]:
    """The notebook as a plain nbformat-4 dict (not yet validated)."""
    body: list[dict[str, Any]] = []
    replayed: list[dict[str, Any]] = []
    for step in recording.steps:
        if isinstance(step, RootTurn):
            if step.reasoning:
                text = f"**Root, turn {step.number}**\n\n{step.reasoning}"
                body.append(_markdown(_cell_id("turn", step.node_id), text))
        elif step.replayable:
            body.append(_code_cell(step, len(replayed) + 1))
            results = [result.to_dict() for result in step.results]
            replayed.append({"code": step.cell.code, "results": results})
        else:
            body.append(_shown_only(step))
    run = recording.run
    setup: dict[str, Any] = {
        "cell_type": "code",
        "id": "replay-setup",
        "metadata": {"rlm": {"role": "replay-setup"}},
        "execution_count": None,
        "source": setup_cell_source(run.run_id, replayed, context_lines(store, run)),
        "outputs": [],
    }
    return notebook_of(
        [_title(recording), setup, *body, _answer(recording)],
        {"run_id": run.run_id, "question": run.question, "status": run.status},
    )


def notebook_of(cells: list[dict[str, Any]], rlm: Mapping[str, Any]) -> dict[str, Any]:
    """An nbformat 4 Python notebook of ``cells``, with ``rlm`` under its metadata."""
    return {
        "nbformat": 4,
        "nbformat_minor": NBFORMAT_MINOR,
        "metadata": {
            "kernelspec": _KERNELSPEC,
            "language_info": {"name": "python"},
            "rlm": dict(rlm),
        },
        "cells": cells,
    }


def notebook_text(store: Store, recording: Recording) -> str:
    """The notebook as .ipynb JSON; raises `nbformat.ValidationError` if it is invalid."""
    import nbformat  # only here: it takes a while to import, and only this export needs it

    notebook = build_notebook(store, recording)
    nbformat.validate(notebook)
    # The layout `nbformat.write` uses (indent 1, sorted keys), without its untyped API.
    return json.dumps(notebook, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
