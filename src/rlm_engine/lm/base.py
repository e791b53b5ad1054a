"""The narrow model interface every provider adapter implements."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from rlm_engine.types import Completion, Message, ModelSettings


@runtime_checkable
class LanguageModel(Protocol):
    """A chat model. ``name`` is the canonical ``provider/model`` string."""

    @property
    def name(self) -> str: ...

    @property
    def provider(self) -> str: ...

    async def complete(
        self, messages: Sequence[Message], settings: ModelSettings | None = None
    ) -> Completion:
        """Return the model's reply. Raises ``ProviderError`` with a typed ``kind``."""
        ...


@dataclass(frozen=True, slots=True)
class TextDelta:
    type: Literal["text_delta"]
    text: str


@dataclass(frozen=True, slots=True)
class StreamDone:
    type: Literal["done"]
    completion: Completion


StreamEvent = TextDelta | StreamDone


@runtime_checkable
class StreamingLanguageModel(LanguageModel, Protocol):
    """A model that can also stream its reply; the last event is always ``StreamDone``."""

    def stream(
        self, messages: Sequence[Message], settings: ModelSettings | None = None
    ) -> AsyncIterator[StreamEvent]: ...
