"""Build ``OpenAIChatModel`` for each OpenAI-compatible provider from environment variables.

The environment is a mapping passed in by the caller (``os.environ`` or a settings
snapshot); nothing here reads the process environment.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from rlm_engine.errors import ConfigurationError
from rlm_engine.lm.openai import OpenAIChatModel, Transport

if TYPE_CHECKING:
    from rlm_engine.integrations.databricks.serving_auth import SdkAuthServingModel

VLLM_DEFAULT_URL = "http://localhost:8000/v1"
OLLAMA_DEFAULT_URL = "http://localhost:11434/v1"
LLAMACPP_DEFAULT_URL = "http://localhost:8080/v1"
# Where `rlm sim serve` listens by default (see rlm_engine.sim.config.DEFAULT_SIM_PORT).
SIM_DEFAULT_URL = "http://127.0.0.1:8765/v1"

# Local servers ignore the key, but the SDK refuses an empty one.
_PLACEHOLDER_KEY = "not-needed"


def _get(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def _transport(env: Mapping[str, str]) -> Transport:
    """``RLM_OPENAI_TRANSPORT``: ``direct`` (default, lean HTTP) or ``sdk``."""
    value = (_get(env, "RLM_OPENAI_TRANSPORT") or "direct").lower()
    if value not in ("direct", "sdk"):
        raise ConfigurationError(f"RLM_OPENAI_TRANSPORT must be 'direct' or 'sdk', not {value!r}")
    return "sdk" if value == "sdk" else "direct"


def _ollama_url(url: str) -> str:
    # OLLAMA_BASE_URL conventionally names the server root; the OpenAI API lives under /v1.
    url = url.rstrip("/")
    return url if url.endswith("/v1") else f"{url}/v1"


def make_openai(model: str, env: Mapping[str, str]) -> OpenAIChatModel:
    """``openai/<model>``: needs ``OPENAI_API_KEY`` unless ``OPENAI_BASE_URL`` is set."""
    base_url = _get(env, "OPENAI_BASE_URL")
    api_key = _get(env, "OPENAI_API_KEY")
    if api_key is None and base_url is None:
        raise ConfigurationError(
            f"openai/{model} needs OPENAI_API_KEY to be set "
            "(or OPENAI_BASE_URL for an OpenAI-compatible server that needs no key)"
        )
    return OpenAIChatModel(
        model,
        provider="openai",
        api_key=api_key or _PLACEHOLDER_KEY,
        base_url=base_url,
        transport=_transport(env),
    )


def make_vllm(model: str, env: Mapping[str, str]) -> OpenAIChatModel:
    """``vllm/<model>``: ``VLLM_BASE_URL`` (default localhost:8000), optional ``VLLM_API_KEY``."""
    return OpenAIChatModel(
        model,
        provider="vllm",
        api_key=_get(env, "VLLM_API_KEY") or _PLACEHOLDER_KEY,
        base_url=_get(env, "VLLM_BASE_URL") or VLLM_DEFAULT_URL,
        max_tokens_param="max_tokens",
        transport=_transport(env),
    )


def make_ollama(model: str, env: Mapping[str, str]) -> OpenAIChatModel:
    """``ollama/<model>``: ``OLLAMA_BASE_URL`` (default localhost:11434)."""
    return OpenAIChatModel(
        model,
        provider="ollama",
        api_key="ollama",
        base_url=_ollama_url(_get(env, "OLLAMA_BASE_URL") or OLLAMA_DEFAULT_URL),
        max_tokens_param="max_tokens",
        transport=_transport(env),
    )


def make_llamacpp(model: str, env: Mapping[str, str]) -> OpenAIChatModel:
    """``llamacpp/<model>``: ``LLAMACPP_BASE_URL`` (default localhost:8080)."""
    return OpenAIChatModel(
        model,
        provider="llamacpp",
        api_key=_get(env, "LLAMACPP_API_KEY") or _PLACEHOLDER_KEY,
        base_url=_get(env, "LLAMACPP_BASE_URL") or LLAMACPP_DEFAULT_URL,
        max_tokens_param="max_tokens",
        transport=_transport(env),
    )


def make_databricks(model: str, env: Mapping[str, str]) -> OpenAIChatModel | SdkAuthServingModel:
    """``databricks/<serving-endpoint>``: ``DATABRICKS_HOST`` and ``DATABRICKS_TOKEN``; without
    a token, the credentials ``databricks-sdk`` finds (a profile, OAuth, a job's identity)."""
    host = _get(env, "DATABRICKS_HOST")
    token = _get(env, "DATABRICKS_TOKEN")
    if token is None:
        # The SDK resolves its own credentials (it reads its variables and profiles itself);
        # its headers are asked for per request, so no token is copied anywhere.
        from rlm_engine.integrations.databricks.serving_auth import SdkAuthServingModel, sdk_config

        config = sdk_config(host, _get(env, "DATABRICKS_CONFIG_PROFILE"))
        if config is not None:
            return SdkAuthServingModel(model, config, transport=_transport(env))
    missing = [
        name
        for name, value in (("DATABRICKS_HOST", host), ("DATABRICKS_TOKEN", token))
        if not value
    ]
    if host is None or token is None:
        raise ConfigurationError(
            f"databricks/{model} needs {' and '.join(missing)} to be set "
            "(the workspace URL and a personal access token)"
        )
    if not host.startswith(("http://", "https://")):
        host = f"https://{host}"
    return OpenAIChatModel(
        model,
        provider="databricks",
        api_key=token,
        base_url=f"{host.rstrip('/')}/serving-endpoints",
        max_tokens_param="max_tokens",
        transport=_transport(env),
    )


def make_sim(model: str, env: Mapping[str, str]) -> OpenAIChatModel:
    """``sim/<policy>``: the project's simulator.

    With ``RLM_SIM_URL`` set, the server there (e.g. ``rlm sim serve``). Otherwise a policy
    the simulator knows (``oracle``, ``echo``) starts a simulator in this process, whose
    input window is ``RLM_SIM_CONTEXT_WINDOW`` tokens (default 272,000); any other name
    goes to ``rlm sim serve`` on its default port.
    """
    base_url = _get(env, "RLM_SIM_URL")
    if base_url is None:
        from rlm_engine.sim.oracle_inprocess import (
            DEFAULT_CONTEXT_WINDOW_TOKENS,
            has_policy,
            in_process_url,
        )

        if has_policy(model):
            window = _get(env, "RLM_SIM_CONTEXT_WINDOW")
            if window is not None and not window.isdigit():
                raise ConfigurationError(
                    f"RLM_SIM_CONTEXT_WINDOW must be a token count, not {window!r}"
                )
            tokens = int(window) if window is not None else DEFAULT_CONTEXT_WINDOW_TOKENS
            base_url = in_process_url(model, context_window_tokens=tokens)
    return OpenAIChatModel(
        model,
        provider="sim",
        api_key=_get(env, "RLM_SIM_API_KEY") or "sim",
        base_url=base_url or SIM_DEFAULT_URL,
        max_tokens_param="max_tokens",
        transport=_transport(env),
    )
