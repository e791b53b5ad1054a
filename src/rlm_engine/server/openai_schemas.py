"""The bodies of the OpenAI-compatible routes, in the shapes OpenAI clients read.

Requests are lenient where OpenAI clients differ (fields this endpoint has no use for,
such as ``frequency_penalty`` or ``tools``, are accepted and ignored) and strict where a
field would change what runs: the RLM settings are checked like those of ``POST
/v1/runs``, and provider endpoints or credentials are refused, never used.
"""

from __future__ import annotations

from typing import Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, model_validator

# Fields that would steer where a model call goes or with whose key: refused by name.
CREDENTIAL_FIELDS = frozenset(
    {"base_url", "api_key", "api_key_env", "api_base", "provider_url", "headers"}
)


class Lenient(BaseModel):
    """A part of a request as clients send it: extra fields are kept, not refused."""

    model_config = ConfigDict(extra="allow")


class FileRef(Lenient):
    """A ``file`` content part's file: inline bytes (``file_data``, base64 or a
    ``data:`` URL) or the id of an uploaded context (a session id)."""

    file_data: str | None = None
    file_id: str | None = None
    filename: str | None = None


class ContentPart(Lenient):
    type: str
    text: str | None = None
    file: FileRef | None = None


class ChatMessage(Lenient):
    role: str
    content: str | list[ContentPart] | None = None
    name: str | None = None


class JsonSchemaFormat(Lenient):
    name: str = "output"
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None
    description: str | None = None


class ResponseFormat(Lenient):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None


class StreamOptions(Lenient):
    include_usage: bool = False


class ChatRequest(Lenient):
    """``POST /v1/chat/completions``: OpenAI's fields, and the RLM's settings as extra
    body fields (``sub_model``, ``max_iterations``, ``budget_usd``, ``session_id``...)."""

    model: str = Field(min_length=1)
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    response_format: ResponseFormat | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    n: int | None = Field(default=None, ge=1, le=1)
    user: str | None = None

    # The RLM's own settings (see `schemas.RunOptions`).
    sub_model: str | None = Field(default=None, min_length=1)
    fallback_models: list[str] | None = None
    max_iterations: int | None = None
    max_depth: int | None = None
    max_children: int | None = None
    max_sub_calls: int | None = None
    max_seconds: float | None = None
    budget_usd: float | None = None
    instructions: str | None = None
    session_id: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_credentials(cls, data: Any) -> Any:
        if isinstance(data, dict):
            named = sorted(CREDENTIAL_FIELDS & {str(k) for k in cast(dict[Any, Any], data)})
            if named:
                raise ValueError(
                    f"{', '.join(named)}: provider endpoints and credentials come from "
                    "the server's settings, never from a request"
                )
        return cast(Any, data)


RUN_FIELDS = (
    "sub_model",
    "fallback_models",
    "max_iterations",
    "max_depth",
    "max_children",
    "max_sub_calls",
    "max_seconds",
    "budget_usd",
    "temperature",
    "instructions",
)
"""The request fields that are `schemas.RunOptions` fields of the same name."""


# --- responses ---------------------------------------------------------------------------


class PromptTokensDetails(BaseModel):
    cached_tokens: int


class CompletionUsage(BaseModel):
    """Every token of the run's whole call tree: root turns, sub-calls and child RLMs."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None
    refusal: None = None


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: str
    logprobs: None = None


class ChatCompletion(BaseModel):
    """The answer; ``id`` is ``chatcmpl-<run_id>`` and ``run_id`` names the run for
    ``GET /v1/runs/{run_id}``."""

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: CompletionUsage
    run_id: str
    cost_usd: float | None
    system_fingerprint: None = None


class ChunkDelta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None
    reasoning_content: str | None = None


class ChunkChoice(BaseModel):
    index: int = 0
    delta: ChunkDelta
    finish_reason: str | None = None
    logprobs: None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: CompletionUsage | None = None
    run_id: str


class ModelOut(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelOut]
