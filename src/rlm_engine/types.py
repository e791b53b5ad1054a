"""Plain typed data shared by every layer: messages, usage, completions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from rlm_engine.errors import ProviderErrorKind

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True, slots=True)
class Message:
    """One chat message."""

    role: Role
    content: str


@dataclass(frozen=True, slots=True)
class Usage:
    """Token usage of one or more model calls."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    requests: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cached_tokens=self.cached_tokens + other.cached_tokens,
            requests=self.requests + other.requests,
        )

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True, slots=True)
class FallbackNote:
    """A model that failed before the one that answered: its name and the error kind."""

    model: str
    kind: ProviderErrorKind
    error: str


@dataclass(frozen=True, slots=True)
class Completion:
    """What a model call returns.

    ``cost_usd`` is ``None`` when the price of the model is unknown: an unknown price is
    never reported as zero.
    """

    text: str
    model: str
    usage: Usage = field(default_factory=Usage)
    latency_s: float = 0.0
    finish_reason: str | None = None
    cost_usd: float | None = None
    provider: str = ""
    fallbacks: tuple[FallbackNote, ...] = ()
    from_cache: bool = False


@dataclass(frozen=True, slots=True)
class ModelSettings:
    """Per-call generation settings. ``None`` means the provider's default."""

    temperature: float | None = None
    max_output_tokens: int | None = None
    timeout_s: float | None = None
    stop: tuple[str, ...] = ()
