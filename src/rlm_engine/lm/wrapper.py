"""The base of models that wrap another model to add one behaviour (price, retry, cache)."""

from __future__ import annotations

from rlm_engine.lm.base import LanguageModel
from rlm_engine.lm.lifecycle import aclose_model


class ModelWrapper:
    """Answers to the wrapped model's name and provider and closes it with itself;
    subclasses add ``complete`` (and ``stream`` where they pass streams on)."""

    def __init__(self, inner: LanguageModel) -> None:
        self.inner = inner

    @property
    def name(self) -> str:
        """The canonical ``provider/model`` string."""
        return self.inner.name

    @property
    def provider(self) -> str:
        """The provider name, e.g. ``openai``."""
        return self.inner.provider

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.inner!r})"

    async def aclose(self) -> None:
        """Release the wrapped model's HTTP clients."""
        await aclose_model(self.inner)
