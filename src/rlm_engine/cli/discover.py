"""Finding a model when none is configured."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from rlm_engine.cli.local_servers import LOCAL_SERVERS, probe_server, server_url
from rlm_engine.errors import ConfigurationError

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
    probe = probe_server(base_url, "", connect_timeout_s=timeout_s, read_timeout_s=timeout_s)
    return list(probe.models)


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
    for server in LOCAL_SERVERS:
        url = server_url(server, env)
        models = probe(url) if url else []
        if models:
            return f"{server.provider}/{models[0]}"
    for variable, model in KEY_DEFAULTS:
        if env.get(variable):
            return model
    raise ConfigurationError(HOW_TO_CONFIGURE)
