"""``--base-url`` and ``--api-key-env``: the root model's provider endpoint and the NAME of
the variable holding its key, applied as that provider's own variables in the
environment the models are built from (never the sandbox's, which holds none).

Only the variable's name is stored with a run; its value is read from the environment
each time the run's models are built (``rlm ask``, ``rlm runs resume``).
"""

from __future__ import annotations

from collections.abc import Mapping

from rlm_engine.errors import ConfigurationError

# provider -> (variable of its endpoint, variable of its key); None where it has none.
PROVIDER_VARS: Mapping[str, tuple[str | None, str | None]] = {
    "openai": ("OPENAI_BASE_URL", "OPENAI_API_KEY"),
    "anthropic": ("ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY"),
    "gemini": (None, "GEMINI_API_KEY"),
    "vllm": ("VLLM_BASE_URL", "VLLM_API_KEY"),
    "ollama": ("OLLAMA_BASE_URL", None),
    "llamacpp": ("LLAMACPP_BASE_URL", "LLAMACPP_API_KEY"),
    "databricks": ("DATABRICKS_HOST", "DATABRICKS_TOKEN"),
    "litellm": ("LITELLM_API_BASE", "LITELLM_API_KEY"),
    "sim": ("RLM_SIM_URL", None),
}


def _provider(model: str) -> str:
    for sep in ("/", ":"):
        if sep in model:
            return model.split(sep, 1)[0]
    return model


def provider_env(
    env: Mapping[str, str], model: str, base_url: str | None, api_key_env: str | None
) -> Mapping[str, str]:
    """``env`` with the endpoint and key of ``model``'s provider set from the flags."""
    if base_url is None and api_key_env is None:
        return env
    provider = _provider(model)
    url_var, key_var = PROVIDER_VARS.get(provider, (None, None))
    out = dict(env)
    if base_url is not None:
        if url_var is None:
            raise ConfigurationError(
                f"--base-url does not apply to {provider} models ({model})",
                hint="leave it out, or use a provider with an endpoint (openai, vllm, ...)",
            )
        out[url_var] = base_url
    if api_key_env is not None:
        if key_var is None:
            raise ConfigurationError(
                f"--api-key-env does not apply to {provider} models ({model}): they take "
                "no API key",
                hint="leave --api-key-env out",
            )
        key = env.get(api_key_env, "").strip()
        if not key:
            raise ConfigurationError(
                f"--api-key-env names {api_key_env}, which is not set",
                hint=f"export {api_key_env}=<your key>, or leave --api-key-env out to use "
                f"{key_var}",
            )
        out[key_var] = key
    return out
