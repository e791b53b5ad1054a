"""Input windows of known models, from the ``genai-prices`` catalogue (``None``: unknown)."""

from __future__ import annotations

import functools

from rlm_engine.errors import ConfigurationError
from rlm_engine.lm.pricing import GENAI_PRICES_PROVIDERS
from rlm_engine.lm.spec import split_model_spec


@functools.lru_cache(maxsize=256)
def context_window_tokens(model: str) -> int | None:
    """The catalogue's window of ``provider/model`` in tokens, or ``None`` when unknown.

    Cached: every sub-call of a fan-out asks, and a catalogue match scans all of it."""
    try:
        provider, name = split_model_spec(model)
    except ConfigurationError:
        return None
    provider_id = GENAI_PRICES_PROVIDERS.get(provider)
    if provider_id is None:
        return None
    from genai_prices import data_snapshot

    try:
        found = data_snapshot.get_snapshot().find_provider_model(name, None, provider_id, None)
    except (LookupError, ValueError):
        return None
    window = found[1].context_window
    return window if isinstance(window, int) and window > 0 else None
