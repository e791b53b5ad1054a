"""Fallback routing: an ordered list of models for one role.

Each model in the list is normally a ``RetryingModel``, so rate limits and 5xx are
retried on that model first; only its final failure moves on. Content-policy blocks,
auth errors and an open circuit are not retried and move on at once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from rlm_engine.errors import ConfigurationError, ProviderError, ProviderErrorKind
from rlm_engine.lm.base import LanguageModel
from rlm_engine.lm.lifecycle import aclose_model
from rlm_engine.types import Completion, FallbackNote, Message, ModelSettings

# Failures that say nothing about the request itself, so another model may succeed.
FALLBACK_KINDS: frozenset[ProviderErrorKind] = frozenset(
    {
        "content_filter",
        "auth",
        "circuit_open",
        "rate_limit",
        "server",
        "timeout",
        "connection",
        "malformed",
        "not_found",
    }
)


class FallbackModel:
    """Tries each model in order; the completion lists the ones that failed before it."""

    def __init__(self, models: Sequence[LanguageModel]) -> None:
        if not models:
            raise ConfigurationError("a fallback chain needs at least one model")
        self.models = tuple(models)

    @property
    def name(self) -> str:
        return self.models[0].name

    @property
    def provider(self) -> str:
        return self.models[0].provider

    def __repr__(self) -> str:
        return f"FallbackModel({[m.name for m in self.models]!r})"

    async def aclose(self) -> None:
        for model in self.models:
            await aclose_model(model)

    async def complete(
        self, messages: Sequence[Message], settings: ModelSettings | None = None
    ) -> Completion:
        notes: list[FallbackNote] = []
        for index, model in enumerate(self.models):
            try:
                completion = await model.complete(messages, settings)
            except ProviderError as exc:
                last = index == len(self.models) - 1
                if last or exc.kind not in FALLBACK_KINDS:
                    raise
                notes.append(FallbackNote(model.name, exc.kind, str(exc)))
                continue
            if notes:
                completion = dataclasses.replace(completion, fallbacks=tuple(notes))
            return completion
        raise AssertionError("unreachable: the last model either answers or raises")
