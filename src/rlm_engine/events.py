"""The one typed event vocabulary. The store, the CLI, SSE and tracing all consume it.

It is public schema: ``docs/events.md`` lists every event and the policy for
``EVENT_SCHEMA_VERSION``; ``event_json_schema()`` gives the JSON schema of the union.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal, TypedDict

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

# Pydantic resolves these when a class is first built, so they are runtime imports. Each
# module holds only plain aliases and dataclasses and never imports this one: no cycle, and
# importing the events stays cheap.
from rlm_engine.engine.result import StopReason
from rlm_engine.errors import ProviderErrorKind
from rlm_engine.sandbox.base import CellStatus

EVENT_SCHEMA_VERSION = 1
"""Raised on an incompatible change to any event (see ``docs/events.md``)."""

CallRole = Literal["root", "sub", "digest", "capsule"]
"""What a model call is for: a root turn, a sub-call, a digest of a cell's output, or the
capsule that compacts the root's history."""

SubcallKind = Literal["llm", "rlm", "tool"]

Closing = Literal["ok", "failed"]
"""How a started piece of work ended: ``failed`` when it raised (cancellation included)."""

CANCELLED = "cancelled"
"""How the ``error`` of a closing event starts when its work was cancelled."""


class Origin(TypedDict):
    """Where an event comes from; spread into an event's constructor with ``**``."""

    run_id: str
    node_id: str
    depth: int


class _Event(BaseModel):
    # Each event class builds its validator and serializer when it is first used, not at
    # import: a run's start needs a handful of the classes, and building all of them was
    # most of this module's import time.
    #
    # Serialised events carry every field, so the JSON schema says so: a type generated
    # from it has no optional field that is in fact always there.
    model_config = ConfigDict(
        frozen=True, defer_build=True, json_schema_serialization_defaults_required=True
    )

    schema_version: int = EVENT_SCHEMA_VERSION
    run_id: str
    # Path in the call tree: "" for the root run, "r/2" for the child started by cell 2, etc.
    node_id: str = ""
    depth: int = 0
    ts: float = Field(default_factory=time.time)


class RunStarted(_Event):
    """A run (or the resumption of one) begins; its ``RunFinished`` always follows."""

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
    """A root turn and the cells of its reply begin (per run: root or child, by node)."""

    type: Literal["iteration_started"] = "iteration_started"
    iteration: int


class IterationFinished(_Event):
    """The iteration's cells have run (``ok``, also when one of them gave the answer) or it
    raised (``failed``, with ``error``)."""

    type: Literal["iteration_finished"] = "iteration_finished"
    iteration: int
    status: Closing
    error: str | None = None


class ModelCallStarted(_Event):
    """A model call goes to its provider. A sub-call's is emitted once it holds its
    concurrency slot: from its ``SubcallStarted`` until this, it is queued for one."""

    type: Literal["model_call_started"] = "model_call_started"
    role: CallRole
    model: str
    call_id: str
    prompt_chars: int


class ModelCallFinished(_Event):
    """A model call's reply arrived (or came from the journal or the cache). Emitted before
    a sub-call gives its concurrency slot back, and before the reply is journaled."""

    type: Literal["model_call_finished"] = "model_call_finished"
    role: CallRole
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
    role: CallRole
    from_model: str
    to_model: str
    kind: ProviderErrorKind
    error: str


class ContextMetrics(_Event):
    type: Literal["context_metrics"] = "context_metrics"
    role: CallRole
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
    """A model call failed for good (after retries and fallbacks), or raised anything else
    (a diverged replay, a cancellation: ``kind`` is then ``None``); emitted before a
    sub-call gives its concurrency slot back."""

    type: Literal["model_call_failed"] = "model_call_failed"
    role: CallRole
    model: str
    call_id: str
    error: str
    kind: ProviderErrorKind | None = None


class CellStarted(_Event):
    type: Literal["cell_started"] = "cell_started"
    iteration: int
    cell_index: int
    code: str
    instruction: str | None = None


class CellFinished(_Event):
    """A cell ended: the sandbox's status, or ``failed`` when running it raised on the host
    (the sandbox failed, the run was cancelled); ``error`` says why."""

    type: Literal["cell_finished"] = "cell_finished"
    iteration: int
    cell_index: int
    status: CellStatus | Literal["failed"]
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
    kind: SubcallKind
    prompt_chars: int


class SubcallFinished(_Event):
    """A sub-call ended, answered (``ok``) or failed with ``error`` (also when it was
    cancelled: its cell timed out, or the run stopped)."""

    type: Literal["subcall_finished"] = "subcall_finished"
    call_id: str
    kind: SubcallKind
    ok: bool
    result_chars: int
    error: str | None = None


class DigestStarted(_Event):
    """A cell's output is too long for the root and goes to the digest model."""

    type: Literal["digest_started"] = "digest_started"
    iteration: int
    cell_index: int
    output_chars: int


class DigestFinished(_Event):
    type: Literal["digest_finished"] = "digest_finished"
    iteration: int
    cell_index: int
    output_chars: int
    digest_chars: int
    status: Closing = "ok"
    error: str | None = None


class SandboxRestarted(_Event):
    type: Literal["sandbox_restarted"] = "sandbox_restarted"
    reason: str


class Final(_Event):
    type: Literal["final"] = "final"
    answer: str
    fields: dict[str, Any] | None = None


class RunFinished(_Event):
    """The run is over, however it ended: an exception that escapes the run is ``error``
    and a cancellation ``cancelled``, reported here before it goes on."""

    type: Literal["run_finished"] = "run_finished"
    stop_reason: StopReason
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
    | IterationFinished
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
    | DigestStarted
    | DigestFinished
    | SandboxRestarted
    | Final
    | RunFinished
    | ErrorEvent,
    Field(discriminator="type"),
]


def event_json_schema() -> dict[str, Any]:
    """The JSON schema of ``Event`` (every event as serialised, told apart by ``type``)."""
    schema = TypeAdapter[Event](Event).json_schema(mode="serialization")
    schema["title"] = "Event"
    schema["description"] = (
        f"An rlm-engine event, schema version {EVENT_SCHEMA_VERSION} (see docs/events.md)."
    )
    return schema
