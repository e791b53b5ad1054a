"""The model names the OpenAI-compatible routes serve.

``rlm/<provider>/<model>`` runs an RLM with that root model (``rlm/openai/gpt-5``); an
operator can also name RLM configurations in ``RLM_OPENAI_MODELS``, a JSON object of
alias to run settings, e.g. ``{"rlm-fast": {"model": "openai/gpt-5-mini", "sub_model":
"openai/gpt-5-nano", "max_iterations": 12}}``. A request's own fields override the
alias's. Any other name is OpenAI's 404 ``model_not_found``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, cast

from rlm_engine.errors import ConfigurationError
from rlm_engine.lm.spec import split_model_spec
from rlm_engine.server.openai_errors import ModelNotFoundError
from rlm_engine.settings import Settings

PREFIX = "rlm/"
ALIASES_VAR = "RLM_OPENAI_MODELS"


def aliases(settings: Settings) -> dict[str, dict[str, Any]]:
    """The operator's aliases: name -> run settings (`schemas.RunOptions` fields)."""
    text = settings.env.get(ALIASES_VAR, "").strip()
    if not text:
        return {}
    hint = f'set {ALIASES_VAR} to a JSON object such as {{"rlm-fast": {{"model": "openai/gpt-5"}}}}'
    try:
        raw: object = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"{ALIASES_VAR} is not JSON: {exc}", hint=hint) from exc
    if not isinstance(raw, dict):
        raise ConfigurationError(f"{ALIASES_VAR} is not a JSON object", hint=hint)
    found: dict[str, dict[str, Any]] = {}
    for name, value in cast(dict[Any, Any], raw).items():
        if not isinstance(value, dict) or not isinstance(cast(Any, value).get("model"), str):
            raise ConfigurationError(
                f"{ALIASES_VAR}: alias {name!r} must be an object naming its model", hint=hint
            )
        found[str(name)] = dict(cast(Mapping[str, Any], value))
    return found


def _known_provider(model: str) -> bool:
    from rlm_engine.lm.registry import PROVIDERS

    try:
        provider, _ = split_model_spec(model)
    except ConfigurationError:
        return False
    return provider in PROVIDERS


def resolve(name: str, settings: Settings) -> dict[str, Any]:
    """The run settings ``name`` stands for (at least ``model``); `ModelNotFoundError`
    for a name that is neither an alias nor ``rlm/`` and a model of a known provider."""
    table = aliases(settings)
    if name in table:
        return dict(table[name])
    root = name.removeprefix(PREFIX) if name.startswith(PREFIX) else None
    if root is None or not _known_provider(root):
        raise ModelNotFoundError(f"the model {name!r} does not exist")
    return {"model": root}


def served(settings: Settings) -> list[str]:
    """What ``GET /v1/models`` lists: the aliases, then the server's default model."""
    names = list(aliases(settings))
    if settings.model:
        names.append(PREFIX + settings.model)
    return list(dict.fromkeys(names))
