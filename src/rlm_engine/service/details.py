"""What a viewer opens one at a time: a node's journaled request and reply, a window of
one cell's output, and whether an offline replay reproduces a run's answer.

The tree (`RunService.run_tree`) leaves these texts out or whole; a call's prompt and a
cell's output can each be megabytes, so they are read per node and cut to what is asked.
The caller has checked the run belongs to the tenant (`RunService` does it first).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, cast

from rlm_engine.store.errors import NotFoundError
from rlm_engine.store.protocol import Store
from rlm_engine.store.records import Cell, CellKey, Node

DEFAULT_MAX_CHARS = 20_000


class NodeNotFoundError(NotFoundError):
    """The run has no call-tree node with this id."""

    def __init__(self, run_id: str, node_id: str) -> None:
        super().__init__(
            f"run {run_id!r} has no node {node_id!r}",
            hint="the run's tree lists its node ids (GET /v1/runs/{run_id}/tree)",
        )
        self.run_id = run_id
        self.node_id = node_id


class CellNotFoundError(NotFoundError):
    """The run has no cell with this artifact id."""

    def __init__(self, run_id: str, artifact_id: str) -> None:
        super().__init__(
            f"run {run_id!r} has no cell {artifact_id!r}",
            hint="the run's tree lists its cells' artifact ids (GET /v1/runs/{run_id}/tree)",
        )
        self.run_id = run_id
        self.artifact_id = artifact_id


@dataclass(frozen=True, slots=True)
class PromptMessage:
    """One message of a journaled request; ``content`` cut to the asked size."""

    role: str
    content: str
    chars: int
    """The content's full length."""


@dataclass(frozen=True, slots=True)
class NodeDetail:
    """A node with its journaled texts, each cut to ``max_chars`` characters.

    ``messages`` is the request read as chat messages when it was journaled as their JSON;
    else ``request`` is its text. Both are None when no request was journaled (the engine
    journals a call's request hash, not its prompt) or the call has not finished."""

    node: Node
    request: str | None
    request_chars: int | None
    messages: tuple[PromptMessage, ...] | None
    response: str | None
    response_chars: int | None
    truncated: bool
    max_chars: int


@dataclass(frozen=True, slots=True)
class CellDetail:
    """A cell and ``output[offset:offset + limit]`` of its stored output."""

    cell: Cell
    output: str
    output_chars: int
    offset: int
    limit: int

    @property
    def next_offset(self) -> int | None:
        """Where the next window starts; None once this one reaches the end."""
        end = self.offset + len(self.output)
        return end if end < self.output_chars else None


@dataclass(frozen=True, slots=True)
class ReplayCheck:
    """What an offline replay of a run gave, beside what the run recorded."""

    run_id: str
    answer: str | None
    stop_reason: str | None
    stop_detail: str
    iterations: int
    recorded_answer: str | None
    matched: bool
    """The replay ended with the recorded answer."""
    error: str | None = None
    """Why the replay could not go on from the journal (it diverged or ran out)."""


def _cut(text: str, max_chars: int) -> tuple[str, bool]:
    return (text[:max_chars], True) if len(text) > max_chars else (text, False)


def _content_text(content: object) -> str:
    """A message's content as text: a string, or the text parts of a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts: list[str] = []
        for part in cast(list[object], content):
            if isinstance(part, dict):
                text = cast(dict[str, object], part).get("text")
                parts.append(text if isinstance(text, str) else json.dumps(part))
            else:
                parts.append(str(part))
        return "\n".join(parts)
    return json.dumps(content, ensure_ascii=False)


def parse_messages(request: str) -> list[tuple[str, str]] | None:
    """``request`` as (role, content) pairs when it is the JSON of chat messages (a list,
    or an object with "messages"); None when it is any other text."""
    try:
        data: Any = json.loads(request)
    except ValueError:
        return None
    if isinstance(data, dict):
        data = cast(dict[str, Any], data).get("messages")
    if not isinstance(data, list) or not data:
        return None
    found: list[tuple[str, str]] = []
    for item in cast(list[object], data):
        if not isinstance(item, dict):
            return None
        message = cast(dict[str, object], item)
        role = message.get("role")
        if not isinstance(role, str) or "content" not in message:
            return None
        found.append((role, _content_text(message["content"])))
    return found


def node_detail(store: Store, run_id: str, node_id: str, *, max_chars: int) -> NodeDetail:
    """The node with its journaled request and response (`NodeNotFoundError`)."""
    node = store.get_node(run_id, node_id)
    if node is None:
        raise NodeNotFoundError(run_id, node_id)
    call = store.find_model_call(run_id, node_id)  # None while the call is in flight
    truncated = False
    request = messages = request_chars = None
    response = response_chars = None
    if call is not None and call.request is not None:
        request_chars = len(call.request)
        pairs = parse_messages(call.request)
        if pairs is None:
            request, truncated = _cut(call.request, max_chars)
        else:
            cut_messages: list[PromptMessage] = []
            for role, content in pairs:
                shown, cut = _cut(content, max_chars)
                truncated = truncated or cut
                cut_messages.append(PromptMessage(role, shown, len(content)))
            messages = tuple(cut_messages)
    if call is not None:
        response_chars = len(call.response)
        response, cut = _cut(call.response, max_chars)
        truncated = truncated or cut
    return NodeDetail(
        node=node,
        request=request,
        request_chars=request_chars,
        messages=messages,
        response=response,
        response_chars=response_chars,
        truncated=truncated,
        max_chars=max_chars,
    )


def cell_key(run_id: str, artifact_id: str) -> CellKey | None:
    """The key an artifact id names (``run:node:iteration:index``, `CellKey.artifact_id`;
    a node id may hold slashes), or None if it is not one of ``run_id``'s."""
    prefix = f"{run_id}:"
    if not artifact_id.startswith(prefix):
        return None
    parts = artifact_id[len(prefix) :].rsplit(":", 2)
    if len(parts) != 3:
        return None
    node_id, iteration, index = parts
    if not node_id or not iteration.isdigit() or not index.isdigit():
        return None
    return CellKey(run_id, node_id, int(iteration), int(index))


def cell_detail(
    store: Store, run_id: str, artifact_id: str, *, offset: int, limit: int
) -> CellDetail:
    """One cell with a window of its output (`CellNotFoundError`)."""
    key = cell_key(run_id, artifact_id)
    cell = None if key is None else store.get_cell(key)
    if cell is None or cell.artifact_id != artifact_id:
        raise CellNotFoundError(run_id, artifact_id)
    output = cell.output or ""
    return CellDetail(
        cell=cell,
        output=output[offset : offset + limit],
        output_chars=len(output),
        offset=offset,
        limit=limit,
    )
