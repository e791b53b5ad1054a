"""Finding a model when none is configured."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import cast

from rlm_engine.errors import ConfigurationError

# Local OpenAI-compatible servers at their default ports, in the order we try them.
LOCAL_SERVERS: tuple[tuple[str, str], ...] = (
    ("ollama", "http://127.0.0.1:11434/v1"),
    ("vllm", "http://127.0.0.1:8000/v1"),
    ("llamacpp", "http://127.0.0.1:8080/v1"),
)
KEY_DEFAULTS: tuple[tuple[str, str], ...] = (
    ("OPENAI_API_KEY", "openai/gpt-5-mini"),
    ("ANTHROPIC_API_KEY", "anthropic/claude-sonnet-4-5"),
    ("GEMINI_API_KEY", "gemini/gemini-2.5-flash"),
)

HOW_TO_CONFIGURE = """no model is configured. Any of these works:
  - pass --model provider/model (e.g. --model openai/gpt-5-mini, --model ollama/qwen3-coder)
  - set RLM_MODEL=provider/model
  - set OPENAI_API_KEY, ANTHROPIC_API_KEY or GEMINI_API_KEY
  - set OPENAI_BASE_URL to any OpenAI-compatible server (vLLM, llama.cpp, LM Studio, ...)
  - start Ollama (port 11434), vLLM (port 8000) or llama.cpp's server (port 8080) locally
  - or try `rlm demo`, which runs offline with a scripted model"""

Probe = Callable[[str], list[str]]


def list_models(base_url: str, timeout_s: float = 0.5) -> list[str]:
    """Model ids served by an OpenAI-compatible server; empty if none answers."""
    import urllib.request  # only when probing: it is slow to import

    try:
        with urllib.request.urlopen(f"{base_url.rstrip('/')}/models", timeout=timeout_s) as resp:
            body = json.loads(resp.read())
    except (OSError, ValueError):
        return []
    return _model_ids(body)


def _model_ids(body: object) -> list[str]:
    if not isinstance(body, dict):
        return []
    data = cast(dict[str, object], body).get("data")
    if not isinstance(data, list):
        return []
    ids: list[str] = []
    for item in cast(list[object], data):
        if isinstance(item, dict) and "id" in item:
            ids.append(str(cast(dict[str, object], item)["id"]))
    return ids


def discover_model(env: Mapping[str, str], probe: Probe | None = None) -> str:
    """Pick a model: ``RLM_MODEL``, an ``OPENAI_BASE_URL`` server, a local server, a key."""
    probe = probe or list_models
    if env.get("RLM_MODEL"):
        return env["RLM_MODEL"]
    base = env.get("OPENAI_BASE_URL")
    if base:
        models = probe(base)
        if models:
            return f"openai/{models[0]}"
    for provider, url in LOCAL_SERVERS:
        models = probe(url)
        if models:
            return f"{provider}/{models[0]}"
    for variable, model in KEY_DEFAULTS:
        if env.get(variable):
            return model
    raise ConfigurationError(HOW_TO_CONFIGURE)
