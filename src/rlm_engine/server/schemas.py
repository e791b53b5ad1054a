"""The API's request and response bodies. Store and service records are converted here,
field by field, so a column added to the store never leaks into the API by accident."""

from __future__ import annotations

from typing import Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, model_validator

from rlm_engine.service.sessions import SessionInfo
from rlm_engine.service.stats import UsageStats, UsageTotals
from rlm_engine.store.records import Cell, MemoryItem, Node, Run, RunTree

ExportFormat = Literal["ipynb", "jsonl", "md"]

# Fields a client might send to steer where a model call goes or with whose credentials.
# A server calls providers only with what its operator configured, so these are refused
# with a message saying so instead of being dropped silently.
_CREDENTIAL_FIELDS = frozenset(
    {"base_url", "api_key", "api_key_env", "api_base", "provider_url", "headers"}
)


class RequestBody(BaseModel):
    """A request body: unknown fields are an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _no_credentials(cls, data: Any) -> Any:
        if isinstance(data, dict):
            keys = {str(k) for k in cast(dict[Any, Any], data)}
            named = sorted(_CREDENTIAL_FIELDS & keys)
            if named:
                raise ValueError(
                    f"{', '.join(named)}: provider endpoints and credentials come from "
                    "the server's settings, never from a request"
                )
        return cast(Any, data)


# --- sessions --------------------------------------------------------------------------


class SessionText(RequestBody):
    name: str = Field(min_length=1, max_length=200)
    context: str = Field(description="the context itself, as text")


class SessionPath(RequestBody):
    name: str = Field(min_length=1, max_length=200)
    path: str = Field(min_length=1, description="a path under one of RLM_ALLOWED_PATHS")


class SessionOut(BaseModel):
    session_id: str
    name: str
    context_bytes: int
    filename: str | None
    created_at: float
    runs: int

    @classmethod
    def of(cls, info: SessionInfo) -> SessionOut:
        return cls(
            session_id=info.id,
            name=info.name,
            context_bytes=info.context_bytes,
            filename=info.filename,
            created_at=info.created_at,
            runs=info.runs,
        )


class SessionList(BaseModel):
    sessions: list[SessionOut]


class MemoryValue(RequestBody):
    value: Any = Field(description="any JSON value")


class MemoryItemOut(BaseModel):
    key: str
    value: Any
    updated_at: float

    @classmethod
    def of(cls, item: MemoryItem) -> MemoryItemOut:
        return cls(key=item.key, value=item.value, updated_at=item.updated_at)


class MemoryList(BaseModel):
    items: list[MemoryItemOut]


# --- runs --------------------------------------------------------------------------------


class RunOptions(RequestBody):
    """How to run: the model and the limits of one run. Unset fields take the server's
    defaults; the server's own limits (depth, time) cap whatever is asked."""

    model: str | None = Field(default=None, min_length=1, description="e.g. openai/gpt-4o-mini")
    sub_model: str | None = Field(default=None, min_length=1)
    fallback_models: list[str] = Field(default_factory=list[str], max_length=8)
    max_iterations: int | None = Field(default=None, ge=1, le=1000)
    max_depth: int | None = Field(default=None, ge=0, le=32)
    max_children: int | None = Field(default=None, ge=0, le=100_000)
    max_sub_calls: int | None = Field(default=None, ge=0, le=1_000_000)
    max_seconds: float | None = Field(default=None, gt=0, le=7 * 86_400)
    budget_usd: float | None = Field(default=None, gt=0, le=1_000_000)
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_output_tokens: int | None = Field(default=None, ge=1, le=1_000_000)
    instructions: str | None = Field(default=None, max_length=100_000)


class RunCreate(RunOptions):
    question: str = Field(min_length=1)
    session_id: str | None = Field(default=None, description="ask over this session's context")
    context: str | None = Field(
        default=None, description="a context as text (kept as a new session); not with session_id"
    )

    @model_validator(mode="after")
    def _one_context(self) -> RunCreate:
        if self.session_id is not None and self.context is not None:
            raise ValueError("give session_id or context, not both")
        return self


class RunResume(RequestBody):
    accept_divergence: bool = False


class Usage(BaseModel):
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    sub_calls: int
    iterations: int


class RunLinks(BaseModel):
    self: str
    events: str
    tree: str
    cancel: str


def run_links(run_id: str) -> RunLinks:
    base = f"/v1/runs/{run_id}"
    return RunLinks(
        self=base, events=f"{base}/events", tree=f"{base}/tree", cancel=f"{base}/cancel"
    )


class RunOut(BaseModel):
    run_id: str
    status: str
    session_id: str | None
    question: str
    model: str
    sub_model: str
    stop_reason: str | None
    detail: str | None
    answer: str | None
    usage: Usage
    cost_usd: float | None
    created_at: float
    updated_at: float
    finished_at: float | None
    attempt: int
    last_event_seq: int
    failure_kind: str | None
    cancel_requested: bool
    links: RunLinks

    @classmethod
    def of(cls, run: Run) -> RunOut:
        t = run.totals
        return cls(
            run_id=run.run_id,
            status=run.status,
            session_id=run.session,
            question=run.question,
            model=run.model,
            sub_model=run.sub_model,
            stop_reason=run.stop_reason,
            detail=run.detail,
            answer=run.answer,
            usage=usage_of(run),
            cost_usd=t.cost_usd,
            created_at=run.created_at,
            updated_at=run.updated_at,
            finished_at=run.finished_at,
            attempt=run.attempt,
            last_event_seq=run.last_event_seq,
            failure_kind=run.failure_kind,
            cancel_requested=run.cancel_requested,
            links=run_links(run.run_id),
        )


def usage_of(run: Run) -> Usage:
    t = run.totals
    return Usage(
        input_tokens=t.input_tokens,
        output_tokens=t.output_tokens,
        cached_tokens=t.cached_tokens,
        sub_calls=t.sub_calls,
        iterations=t.iterations,
    )


class RunAccepted(BaseModel):
    run_id: str
    status: str
    links: RunLinks


class RunPageOut(BaseModel):
    runs: list[RunOut]
    next_cursor: str | None


class NodeOut(BaseModel):
    node_id: str
    parent_id: str | None
    kind: str
    model: str | None
    status: str
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    cost_usd: float | None
    latency_s: float | None
    response_chars: int | None
    error: str | None
    meta: dict[str, Any]
    started_at: float
    finished_at: float | None

    @classmethod
    def of(cls, node: Node) -> NodeOut:
        return cls(
            node_id=node.node_id,
            parent_id=node.parent_id,
            kind=node.kind,
            model=node.model,
            status=node.status,
            input_tokens=node.usage.input_tokens,
            output_tokens=node.usage.output_tokens,
            cached_tokens=node.usage.cached_tokens,
            cost_usd=node.cost_usd,
            latency_s=node.latency_s,
            response_chars=node.response_chars,
            error=node.error,
            meta=node.meta,
            started_at=node.started_at,
            finished_at=node.finished_at,
        )


class CellOut(BaseModel):
    artifact_id: str
    node_id: str
    iteration: int
    cell_index: int
    instruction: str | None
    code: str
    status: str
    output: str | None = Field(description="None when the tree was read with outputs=false")
    output_chars: int | None
    error: str | None
    started_at: float | None
    finished_at: float | None

    @classmethod
    def of(cls, cell: Cell, *, output: bool = True) -> CellOut:
        return cls(
            artifact_id=cell.artifact_id,
            node_id=cell.node_id,
            iteration=cell.iteration,
            cell_index=cell.cell_index,
            instruction=cell.instruction,
            code=cell.code,
            status=cell.status,
            output=cell.output if output else None,
            output_chars=cell.output_chars,
            error=cell.error,
            started_at=cell.started_at,
            finished_at=cell.finished_at,
        )


class TreeOut(BaseModel):
    """A run's call tree, flat: each node names its parent (None: a top-level node)."""

    run: RunOut
    nodes: list[NodeOut]
    cells: list[CellOut]

    @classmethod
    def of(cls, tree: RunTree, *, outputs: bool = True) -> TreeOut:
        return cls(
            run=RunOut.of(tree.run),
            nodes=[NodeOut.of(n) for n in tree.nodes],
            cells=[CellOut.of(c, output=outputs) for c in tree.cells],
        )


# --- stats -------------------------------------------------------------------------------


class UsageTotalsOut(BaseModel):
    calls: int
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    cost_usd: float | None = Field(description="None when any of these calls had no known price")
    unpriced_calls: int

    @classmethod
    def of(cls, t: UsageTotals) -> UsageTotalsOut:
        return cls(
            calls=t.calls,
            input_tokens=t.input_tokens,
            output_tokens=t.output_tokens,
            cached_tokens=t.cached_tokens,
            cost_usd=t.cost_usd,
            unpriced_calls=t.unpriced_calls,
        )


class StatsOut(BaseModel):
    totals: UsageTotalsOut
    by_model: dict[str, UsageTotalsOut]
    by_day: dict[str, UsageTotalsOut]
    by_session: dict[str, UsageTotalsOut]

    @classmethod
    def of(cls, stats: UsageStats) -> StatsOut:
        def group(groups: dict[str, UsageTotals]) -> dict[str, UsageTotalsOut]:
            return {k: UsageTotalsOut.of(v) for k, v in groups.items()}

        return cls(
            totals=UsageTotalsOut.of(stats.totals),
            by_model=group(stats.by_model),
            by_day=group(stats.by_day),
            by_session=group(stats.by_session),
        )


# --- the seed's surface ------------------------------------------------------------------


class SeedSession(RequestBody):
    name: str = Field(min_length=1, max_length=200)
    context: str


class SeedExecute(RequestBody):
    session_id: str
    user_query: str = Field(min_length=1)
    model: str | None = Field(default=None, min_length=1)


class SeedExecution(BaseModel):
    execution_id: str
    answer: str | None
    status: str
    stop_reason: str | None
    usage: Usage
    cost_usd: float | None


class Health(BaseModel):
    status: Literal["ok"] = "ok"
