"""Export a stored run: `jsonl` (machine-readable audit trail), `md` (to read) or `ipynb`
(a notebook that re-executes offline from the recorded results).

    text = export_run(store, run_id, "ipynb")
    write_export(store, run_id, "md", Path("run.md"))
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rlm_engine.errors import ConfigurationError
from rlm_engine.store.export_formats import EXPORT_FORMATS
from rlm_engine.store.export_notebook import fence, notebook_text
from rlm_engine.store.export_recording import Recording, RootCell, RootTurn, load_recording
from rlm_engine.store.protocol import Store
from rlm_engine.store.records import Cell, StoredEvent


def event_record(event: StoredEvent) -> dict[str, Any]:
    """An event as exported: its stored body (with `type`) plus its sequence number."""
    return {"seq": event.seq, **event.body, "type": event.type}


def cell_record(cell: Cell) -> dict[str, Any]:
    """A cell of the artifact registry as a JSON object."""
    return asdict(cell)


def to_jsonl(recording: Recording) -> str:
    """One JSON object per event (`"record": "event"`), then one per cell (`"cell"`)."""
    lines = [
        json.dumps({"record": "event", **event_record(e)}, ensure_ascii=False, default=str)
        for e in recording.events
    ]
    lines += [
        json.dumps({"record": "cell", **cell_record(c)}, ensure_ascii=False, default=str)
        for c in recording.cells
    ]
    return "".join(line + "\n" for line in lines)


def _markdown_cell(step: RootCell) -> list[str]:
    cell = step.cell
    state = str(cell.meta.get("cell_status") or cell.status)
    head = f"### Cell {cell.iteration}.{cell.cell_index + 1} ({state})"
    parts = [head]
    if cell.instruction:
        parts.append(f"Instruction: {cell.instruction}")
    parts.append(fence(cell.code, "python"))
    if cell.output:
        parts.append("Output:\n\n" + fence(cell.output, "text"))
    if cell.error:
        parts.append("Error:\n\n" + fence(cell.error, "text"))
    if step.results:
        parts.append(f"{len(step.results)} sub-call(s) answered during this cell.")
    return parts


def to_markdown(recording: Recording) -> str:
    """The question, the root's reasoning as prose, every root cell's code and output, and
    the answer."""
    run = recording.run
    totals = run.totals
    cost = "unknown" if totals.cost_usd is None else f"${totals.cost_usd:.4f}"
    parts = [
        f"# RLM run {run.run_id}",
        "## Question\n\n" + run.question,
        f"Model `{run.model}`, sub-model `{run.sub_model}`. Status {run.status}, stop reason "
        f"{run.stop_reason}; {totals.iterations} iterations, {totals.input_tokens:,} input "
        f"and {totals.output_tokens:,} output tokens, cost {cost}.",
    ]
    for step in recording.steps:
        if isinstance(step, RootTurn):
            parts.append(f"## Turn {step.number}")
            if step.reasoning:
                parts.append(step.reasoning)
        else:
            parts.extend(_markdown_cell(step))
    answer = run.answer if run.answer is not None else "(no answer)"
    parts.append("## Answer\n\n" + answer)
    return "\n\n".join(parts) + "\n"


def export_run(store: Store, run_id: str, fmt: str) -> str:
    """The run as text in `fmt`; raises `RunNotFoundError` or `ConfigurationError`."""
    if fmt not in EXPORT_FORMATS:
        raise ConfigurationError(
            f"unknown export format {fmt!r}; choose one of {', '.join(EXPORT_FORMATS)}"
        )
    recording = load_recording(store, run_id)
    if fmt == "jsonl":
        return to_jsonl(recording)
    if fmt == "md":
        return to_markdown(recording)
    return notebook_text(store, recording)


def write_export(store: Store, run_id: str, fmt: str, path: Path) -> Path:
    """Write the export to `path` (parent folders created); returns the path."""
    text = export_run(store, run_id, fmt)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
