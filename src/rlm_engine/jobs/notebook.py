"""``cell.ipynb``: every artifact as a notebook that replays it.

The notebook has a markdown cell naming the artifact, a setup cell that rebuilds the
REPL as the artifact found it, and the artifact's code with the output it recorded.
The setup cell loads the context with the REPL's own loader and restores ``namespace.in``,
the snapshot the previous artifact left, rather than running the earlier artifacts' code
again: a snapshot gives the exact variables without repeating the earlier cells' model
calls (which a notebook kernel cannot make) or their side effects. The REPL's host
helpers (``llm_query``, ``rlm_query``, ...) answer from this artifact's recorded calls,
in order, so the cell itself runs as it did.

Restoring unpickles the snapshot in the notebook's kernel: open notebooks only from a
registry you trust, as you would any pickle.
"""

from __future__ import annotations

import base64
import json
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

from rlm_engine.jobs.artifact_context import decode_context
from rlm_engine.jobs.artifact_result import ArtifactResult
from rlm_engine.store.export_notebook import error_output, notebook_of

CALLS_FILE = "calls.json"
_HELPERS = ("llm_query", "llm_query_batched", "rlm_query", "rlm_query_batched")


def _source(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def _outputs(result: ArtifactResult | None) -> list[dict[str, Any]]:
    if result is None:
        return []
    outputs: list[dict[str, Any]] = []
    if result.stdout:
        outputs.append({"output_type": "stream", "name": "stdout", "text": _source(result.stdout)})
    if result.stderr:
        outputs.append({"output_type": "stream", "name": "stderr", "text": _source(result.stderr)})
    if result.cell_status != "ok" and result.error:
        outputs.append(error_output(result.error))
    return outputs


def setup_source(folder: Path, context: Mapping[str, Any], *, restores: bool) -> str:
    """The setup cell: the context, the previous artifact's variables, the helpers."""
    snapshot = str(folder / "namespace.in") if restores else None
    return (
        "# Rebuild the REPL as this artifact found it: its context, the variables the\n"
        "# previous artifact left (namespace.in), and the host helpers answering from\n"
        "# this artifact's recorded calls.\n"
        "from rlm_engine.jobs.notebook import restore_state\n"
        "\n"
        "restore_state(\n"
        "    globals(),\n"
        f"    context={json.dumps(dict(context), sort_keys=True)!s},\n"
        f"    snapshot={snapshot!r},\n"
        f"    calls={str(folder / CALLS_FILE)!r},\n"
        ")\n"
    )


def artifact_notebook(
    *,
    artifact_id: str,
    session_id: str,
    invocation_id: str,
    iteration: int,
    code: str,
    folder: Path,
    context: Mapping[str, Any],
    restores: bool,
    parent: str | None,
    result: ArtifactResult | None,
) -> dict[str, Any]:
    """The nbformat 4 document of one artifact (cell ids derive from the artifact id,
    so the same artifact always gives the same file)."""
    status = "not run" if result is None else result.cell_status
    lines = [
        f"# Artifact `{artifact_id}`",
        "",
        f"- session: `{session_id}`",
        f"- run (invocation): `{invocation_id}`",
        f"- iteration: {iteration}",
        f"- previous artifact: `{parent}`" if parent else "- previous artifact: none",
        f"- cell status: {status}",
    ]
    cells: list[dict[str, Any]] = [
        {
            "cell_type": "markdown",
            "id": f"{artifact_id}-about",
            "metadata": {},
            "source": _source("\n".join(lines) + "\n"),
        },
        {
            "cell_type": "code",
            "id": f"{artifact_id}-setup",
            "metadata": {"rlm": {"role": "setup"}},
            "execution_count": None,
            "outputs": [],
            "source": _source(setup_source(folder, context, restores=restores)),
        },
        {
            "cell_type": "code",
            "id": f"{artifact_id}-cell",
            "metadata": {"rlm": {"artifact_id": artifact_id, "status": status}},
            "execution_count": iteration or None,
            "outputs": _outputs(result),
            "source": _source(code),
        },
    ]
    return notebook_of(cells, {"artifact_id": artifact_id, "session_id": session_id})


def write_notebook(path: Path, notebook: Mapping[str, Any]) -> None:
    text = json.dumps(notebook, ensure_ascii=False, indent=1, sort_keys=True) + "\n"
    partial = path.with_name(f".{path.name}.tmp")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)


# -- run inside the notebook's kernel ------------------------------------------------------


class RecordedCalls:
    """Answers host calls from an artifact's recorded ones, in the order they were made
    (per method), so a replayed cell gets the answers its run got."""

    def __init__(self, calls: Sequence[Mapping[str, Any]]) -> None:
        self._queues: dict[str, list[Mapping[str, Any]]] = {}
        for call in calls:
            self._queues.setdefault(str(call.get("method")), []).append(call)

    def next(self, method: str) -> Any:
        queue = self._queues.get(method)
        if not queue:
            raise RuntimeError(f"{method}: this artifact recorded no further {method} answer")
        call = queue.pop(0)
        if "error" in call:
            raise RuntimeError(str(call["error"]))
        return call.get("value")

    def helpers(self) -> dict[str, Any]:
        def make(method: str) -> Any:
            def helper(*args: Any, **kwargs: Any) -> Any:
                return self.next(method)

            helper.__name__ = method
            return helper

        return {name: make(name) for name in _HELPERS}


def restore_state(
    namespace: dict[str, Any],
    *,
    context: Mapping[str, Any],
    snapshot: str | None = None,
    calls: str | None = None,
) -> list[str]:
    """Load the context as ``context``, the recorded helpers and the snapshot's variables
    into ``namespace`` (a notebook's ``globals()``); returns the restored names."""
    from rlm_engine.sandbox.context import stage_context
    from rlm_engine.sandbox.worker_context import load_context
    from rlm_engine.sandbox.worker_snapshot import Snapshots

    staged = Path(tempfile.mkdtemp(prefix="rlm-notebook-context-")) / "context"
    spec = stage_context(decode_context(context), staged)
    namespace["context"] = load_context(spec)[0]
    recorded: list[Mapping[str, Any]] = []
    if calls is not None and Path(calls).exists():
        loaded = json.loads(Path(calls).read_text(encoding="utf-8"))
        recorded = cast(list[Mapping[str, Any]], loaded if isinstance(loaded, list) else [])
    namespace.update(RecordedCalls(recorded).helpers())
    if snapshot is None or not Path(snapshot).exists():
        return []
    fixed = frozenset({"context", *_HELPERS})
    encoded = base64.b64encode(Path(snapshot).read_bytes()).decode("ascii")
    restored = Snapshots(namespace, lambda: fixed).restore(encoded)
    return [str(name) for name in cast(list[Any], restored.get("names") or [])]
