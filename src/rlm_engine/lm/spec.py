"""Model strings: ``provider/model`` (or ``provider:model``) and their canonical form."""

from __future__ import annotations

from rlm_engine.errors import ConfigurationError


def split_model_spec(spec: str) -> tuple[str, str]:
    """``(provider, model)`` from ``provider/model`` or ``provider:model``.

    The first separator wins, so ``ollama/qwen3:8b`` is provider ``ollama`` with model
    ``qwen3:8b`` and ``scripted:/tmp/replies.jsonl`` keeps its absolute path.
    """
    text = spec.strip()
    cuts = [index for index in (text.find("/"), text.find(":")) if index >= 0]
    if not cuts:
        raise ConfigurationError(
            f"model string {spec!r} has no provider; write it as provider/model, "
            "e.g. openai/gpt-5-mini"
        )
    cut = min(cuts)
    provider, model = text[:cut].strip().lower(), text[cut + 1 :].strip()
    if not provider or not model:
        raise ConfigurationError(
            f"model string {spec!r} needs both a provider and a model, e.g. openai/gpt-5-mini"
        )
    return provider, model


def canonical_model(spec: str) -> str:
    """The canonical ``provider/model`` form of a model string."""
    provider, model = split_model_spec(spec)
    return f"{provider}/{model}"
