"""The one typed event vocabulary. The store, the CLI, SSE and tracing all consume it."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal, TypedDict

from pydantic import BaseModel, ConfigDict, Field


class Origin(TypedDict):
    """Where an event comes from; spread into an event's constructor with ``**``."""

    run_id: str
    node_id: str
    depth: int


class _Event(BaseModel):
    # Each event class builds its validator and serializer when it is first used, not at
    # import: a run's start needs a handful of the classes, and building all of them was
    # most of this module's import time.
    model_config = ConfigDict(frozen=True, defer_build=True)

    run_id: str
    # Path in the call tree: "" for the root run, "r/2" for the child started by cell 2, etc.
    node_id: str = ""
    depth: int = 0
    ts: float = Field(default_factory=time.time)


class RunStarted(_Event):
    type: Literal["run_started"] = "run_started"
    question: str
    model: str
    sub_model: str


class ContextLoaded(_Event):
    type: Literal["context_loaded"] = "context_loaded"
    context_type: str
    total_chars: int
    files: int = 0


class IterationStarted(_Event):
    type: Literal["iteration_started"] = "iteration_started"
    iteration: int


class ModelCallStarted(_Event):
    """A model call goes to its provider. A sub-call's is emitted once it holds its
    concurrency slot: from its ``SubcallStarted`` until this, it is queued for one."""

    type: Literal["model_call_started"] = "model_call_started"
    role: Literal["root", "sub", "digest", "capsule"]
    model: str
    call_id: str
    prompt_chars: int


class ModelCallFinished(_Event):
    """A model call's reply arrived (or came from the journal or the cache). Emitted before
    a sub-call gives its concurrency slot back, and before the reply is journaled."""

    type: Literal["model_call_finished"] = "model_call_finished"
    role: Literal["root", "sub", "digest", "capsule"]
    model: str
    call_id: str
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    cost_usd: float | None
    latency_s: float
    response_chars: int
    finish_reason: str | None = None
    from_cache: bool = False


class ModelFallback(_Event):
    """A model failed for good and the next one in its role's fallback list took over."""

    type: Literal["model_fallback"] = "model_fallback"
    role: Literal["root", "sub", "digest", "capsule"]
    from_model: str
    to_model: str
    kind: str
    error: str


class ContextMetrics(_Event):
    type: Literal["context_metrics"] = "context_metrics"
    role: Literal["root", "sub", "digest", "capsule"]
    model: str
    message_count: int
    estimated_tokens: int
    largest_message_chars: int


class PluginFailed(_Event):
    type: Literal["plugin_failed"] = "plugin_failed"
    plugin: str
    hook: str
    error: str


class ModelCallFailed(_Event):
    """A model call failed for good (after retries and fallbacks); emitted before a
    sub-call gives its concurrency slot back."""

    type: Literal["model_call_failed"] = "model_call_failed"
    role: Literal["root", "sub", "digest", "capsule"]
    model: str
    call_id: str
    error: str
    kind: str


class CellStarted(_Event):
    type: Literal["cell_started"] = "cell_started"
    iteration: int
    cell_index: int
    code: str
    instruction: str | None = None


class CellFinished(_Event):
    type: Literal["cell_finished"] = "cell_finished"
    iteration: int
    cell_index: int
    status: Literal["ok", "error", "timeout", "killed"]
    output: str
    output_chars: int
    duration_s: float
    error: str | None = None


class CellBlocked(_Event):
    type: Literal["cell_blocked"] = "cell_blocked"
    iteration: int
    cell_index: int
    reason: str
    plugin: str = ""
    category: str = ""
    severity: int = 0
    details: list[str] = Field(default_factory=list)


class SubcallStarted(_Event):
    """The REPL asked for a sub-call. A model sub-call (``llm``) then waits for a
    concurrency slot; its ``ModelCallStarted``, under the same ``node_id``, says it has one."""

    type: Literal["subcall_started"] = "subcall_started"
    call_id: str
    kind: Literal["llm", "rlm", "tool"]
    prompt_chars: int


class SubcallFinished(_Event):
    """A sub-call ended, answered (``ok``) or failed with ``error``."""

    type: Literal["subcall_finished"] = "subcall_finished"
    call_id: str
    kind: Literal["llm", "rlm", "tool"]
    ok: bool
    result_chars: int
    error: str | None = None


class DigestFinished(_Event):
    type: Literal["digest_finished"] = "digest_finished"
    iteration: int
    cell_index: int
    output_chars: int
    digest_chars: int


class SandboxRestarted(_Event):
    type: Literal["sandbox_restarted"] = "sandbox_restarted"
    reason: str


class Final(_Event):
    type: Literal["final"] = "final"
    answer: str
    fields: dict[str, Any] | None = None


class RunFinished(_Event):
    type: Literal["run_finished"] = "run_finished"
    stop_reason: str
    detail: str = ""
    iterations: int
    input_tokens: int
    output_tokens: int
    cost_usd: float | None
    duration_s: float


class ErrorEvent(_Event):
    type: Literal["error"] = "error"
    message: str
    where: str = ""


Event = Annotated[
    RunStarted
    | ContextLoaded
    | IterationStarted
    | ModelCallStarted
    | ModelCallFinished
    | ModelCallFailed
    | ModelFallback
    | ContextMetrics
    | PluginFailed
    | CellStarted
    | CellFinished
    | CellBlocked
    | SubcallStarted
    | SubcallFinished
    | DigestFinished
    | SandboxRestarted
    | Final
    | RunFinished
    | ErrorEvent,
    Field(discriminator="type"),
]
