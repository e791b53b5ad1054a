"""Cost of model calls from the ``genai-prices`` data, with user overrides.

An unknown price is ``None``, never zero: local servers, Databricks endpoints, the
simulator and scripted models cost ``0.0`` only when an override says so.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from rlm_engine.errors import ConfigurationError
from rlm_engine.lm.base import LanguageModel, StreamDone, StreamEvent
from rlm_engine.lm.spec import canonical_model, split_model_spec
from rlm_engine.lm.streaming import open_stream
from rlm_engine.lm.wrapper import ModelWrapper
from rlm_engine.types import Completion, Message, ModelSettings, Usage

if TYPE_CHECKING:
    from genai_prices import types as genai_types

# Our provider names mapped to genai-prices provider ids. Providers without a public price
# list are absent on purpose.
GENAI_PRICES_PROVIDERS: Mapping[str, str] = {
    "openai": "openai",
    "anthropic": "anthropic",
    "gemini": "google",
    "litellm": "litellm",
}

_PER_MTOK = 1_000_000


@dataclass(frozen=True, slots=True)
class PriceOverride:
    """A price in USD per million tokens. ``cached_input_per_mtok=None`` bills cached
    input at the normal input price."""

    input_per_mtok: float
    output_per_mtok: float
    cached_input_per_mtok: float | None = None

    def cost(self, usage: Usage) -> float:
        """The cost of ``usage`` at this price."""
        cached = min(usage.cached_tokens, usage.input_tokens)
        cached_price = (
            self.input_per_mtok
            if self.cached_input_per_mtok is None
            else self.cached_input_per_mtok
        )
        total = (
            (usage.input_tokens - cached) * self.input_per_mtok
            + cached * cached_price
            + usage.output_tokens * self.output_per_mtok
        )
        return total / _PER_MTOK


class Pricer:
    """Prices completions. Overrides are keyed by model string (``provider/model``);
    ``provider/*`` applies to every model of a provider. Overrides win over the data."""

    def __init__(self, overrides: Mapping[str, PriceOverride] | None = None) -> None:
        self._overrides: dict[str, PriceOverride] = {}
        for key, price in (overrides or {}).items():
            if key.endswith("/*") or key.endswith(":*"):
                self._overrides[f"{key[:-2].strip().lower()}/*"] = price
            else:
                self._overrides[canonical_model(key)] = price
        # Per model string: its override, or its (model, genai-prices provider) reference,
        # or neither (an unknown price). Resolved once: every sub-call of a fan-out asks.
        self._resolved: dict[str, PriceOverride | tuple[str, str] | None] = {}

    def override_for(self, model: str) -> PriceOverride | None:
        """The override that applies to ``model``, if any."""
        try:
            provider, name = split_model_spec(model)
        except ConfigurationError:
            return None
        return self._overrides.get(f"{provider}/{name}") or self._overrides.get(f"{provider}/*")

    def cost(self, completion: Completion) -> float | None:
        """USD cost of ``completion``; ``None`` when its model's price is unknown."""
        return self.cost_of(completion.model, completion.usage)

    def cost_of(self, model: str, usage: Usage) -> float | None:
        """USD cost of ``usage`` on ``model``; ``None`` when the price is unknown."""
        try:
            price = self._resolved[model]
        except KeyError:
            price = self._resolved[model] = self._resolve(model)
        if price is None:
            return None
        if isinstance(price, PriceOverride):
            return price.cost(usage)
        return _catalogue_cost(price[0], price[1], usage)

    def _resolve(self, model: str) -> PriceOverride | tuple[str, str] | None:
        override = self.override_for(model)
        if override is not None:
            return override
        try:
            provider, name = split_model_spec(model)
        except ConfigurationError:
            return None
        provider_id = GENAI_PRICES_PROVIDERS.get(provider)
        if provider_id is None:
            return None
        return name, provider_id


@functools.lru_cache(maxsize=1024)
def _catalogue_entry(
    model_ref: str, provider_id: str
) -> tuple[genai_types.Provider, genai_types.ModelInfo] | None:
    """The catalogue's (provider, model) for a reference, or ``None`` when unknown.

    Matching a reference scans the whole catalogue (about half a millisecond); a fan-out
    of hundreds of sub-calls to one model must not pay that on every call.
    """
    from genai_prices import data_snapshot

    try:
        return data_snapshot.get_snapshot().find_provider_model(model_ref, None, provider_id, None)
    except (LookupError, ValueError):
        return None


def _catalogue_cost(model_ref: str, provider_id: str, usage: Usage) -> float | None:
    import genai_prices

    entry = _catalogue_entry(model_ref, provider_id)
    if entry is None:
        # Unknown model or provider: an unknown price, which is not a zero price.
        return None
    provider, model = entry
    now = datetime.now(tz=UTC)
    cached = min(usage.cached_tokens, usage.input_tokens)
    # The price in force now (a model's price can change on a date) and the token counts
    # determine the cost; working it out takes about 0.2 ms, so equal usages are costed
    # once.
    key = (id(model.get_prices(now)), usage.input_tokens, usage.output_tokens, cached)
    try:
        return _COSTS[key]
    except KeyError:
        pass
    priced = genai_prices.Usage(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_read_tokens=cached,
    )
    try:
        cost = float(model.calc_price(priced, provider, genai_request_timestamp=now).total_price)
    except (LookupError, ValueError):
        cost = None
    if len(_COSTS) >= _COSTS_KEPT:
        _COSTS.clear()
    _COSTS[key] = cost
    return cost


# Costs by (id of the catalogue's price object, input, output, cached tokens). The price
# objects live as long as the catalogue snapshot, which ``_catalogue_entry`` keeps.
_COSTS: dict[tuple[int, int, int, int], float | None] = {}
_COSTS_KEPT = 4096


class PricedModel(ModelWrapper):
    """Wraps a model and fills ``Completion.cost_usd`` (``None`` when unknown)."""

    def __init__(self, inner: LanguageModel, pricer: Pricer | None = None) -> None:
        super().__init__(inner)
        self.pricer = pricer or Pricer()

    def _priced(self, completion: Completion) -> Completion:
        cost = self.pricer.cost(completion)
        if cost is None and completion.cost_usd is None:
            return completion  # an unknown price stays unknown: nothing to copy
        return dataclasses.replace(completion, cost_usd=cost)

    async def complete(
        self, messages: Sequence[Message], settings: ModelSettings | None = None
    ) -> Completion:
        """The inner completion with its cost."""
        return self._priced(await self.inner.complete(messages, settings))

    async def stream(
        self, messages: Sequence[Message], settings: ModelSettings | None = None
    ) -> AsyncIterator[StreamEvent]:
        """The inner stream; the final ``StreamDone`` carries the cost."""
        events = open_stream(self.inner, messages, settings)
        try:
            async for event in events:
                if isinstance(event, StreamDone):
                    event = StreamDone(type="done", completion=self._priced(event.completion))
                yield event
        finally:
            await events.aclose()
