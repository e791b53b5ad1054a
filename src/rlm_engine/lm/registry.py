"""The model registry: ``provider/model`` strings to adapters, plus provider status.

Providers are entries of a mapping, not branches of an if/elif chain; pass an extended
mapping (``{**PROVIDERS, "mine": ProviderSpec(...)}``) to add one. The environment is
always passed in: nothing here reads the process environment.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from rlm_engine.errors import ConfigurationError, UnknownProviderError
from rlm_engine.lm.anthropic import make_anthropic
from rlm_engine.lm.base import LanguageModel
from rlm_engine.lm.gemini import make_gemini
from rlm_engine.lm.litellm import make_litellm
from rlm_engine.lm.openai_endpoints import (
    make_databricks,
    make_llamacpp,
    make_ollama,
    make_openai,
    make_sim,
    make_vllm,
)
from rlm_engine.lm.pricing import PricedModel, Pricer
from rlm_engine.lm.retry import BreakerBoard, RetryBudget, RetryingModel, RetryPolicy
from rlm_engine.lm.scripted import make_scripted
from rlm_engine.lm.spec import split_model_spec

ModelFactory = Callable[[str, Mapping[str, str]], LanguageModel]


@dataclass(frozen=True, slots=True)
class EnvVar:
    """An environment variable a provider reads."""

    name: str
    description: str


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    """A provider: how to build its models and what it needs.

    ``requires`` lists groups of variable names; each group needs at least one set
    (``(("GEMINI_API_KEY", "GOOGLE_API_KEY"),)``). ``module`` is the vendor package the
    adapter imports, installed with the ``extra``.
    """

    name: str
    factory: ModelFactory
    description: str
    env_vars: tuple[EnvVar, ...] = ()
    requires: tuple[tuple[str, ...], ...] = ()
    extra: str | None = None
    module: str | None = None


@dataclass(frozen=True, slots=True)
class EnvVarStatus:
    """Whether a variable is set. Values are never reported."""

    name: str
    description: str
    is_set: bool


@dataclass(frozen=True, slots=True)
class ProviderInfo:
    """A provider's readiness, for ``rlm models``."""

    name: str
    description: str
    env: tuple[EnvVarStatus, ...]
    missing: tuple[str, ...]
    installed: bool
    extra: str | None

    @property
    def ready(self) -> bool:
        """Installed and every required variable set."""
        return self.installed and not self.missing


def _spec(
    name: str,
    factory: ModelFactory,
    description: str,
    env: tuple[tuple[str, str], ...] = (),
    requires: tuple[tuple[str, ...], ...] = (),
    extra: str | None = None,
    module: str | None = None,
) -> ProviderSpec:
    env_vars = tuple(EnvVar(var, text) for var, text in env)
    return ProviderSpec(name, factory, description, env_vars, requires, extra, module)


PROVIDERS: Mapping[str, ProviderSpec] = MappingProxyType(
    {
        "openai": _spec(
            "openai",
            make_openai,
            "OpenAI API, or any OpenAI-compatible server via OPENAI_BASE_URL",
            (("OPENAI_API_KEY", "API key"), ("OPENAI_BASE_URL", "alternative endpoint")),
            requires=(("OPENAI_API_KEY", "OPENAI_BASE_URL"),),
        ),
        "anthropic": _spec(
            "anthropic",
            make_anthropic,
            "Anthropic Messages API",
            (("ANTHROPIC_API_KEY", "API key"), ("ANTHROPIC_BASE_URL", "alternative endpoint")),
            requires=(("ANTHROPIC_API_KEY",),),
            extra="anthropic",
            module="anthropic",
        ),
        "gemini": _spec(
            "gemini",
            make_gemini,
            "Google Gemini API",
            (("GEMINI_API_KEY", "API key"), ("GOOGLE_API_KEY", "API key (alternative name)")),
            requires=(("GEMINI_API_KEY", "GOOGLE_API_KEY"),),
            extra="gemini",
            module="google.genai",
        ),
        "vllm": _spec(
            "vllm",
            make_vllm,
            "vLLM OpenAI-compatible server (default http://localhost:8000/v1)",
            (("VLLM_BASE_URL", "server URL"), ("VLLM_API_KEY", "API key, if the server wants one")),
        ),
        "ollama": _spec(
            "ollama",
            make_ollama,
            "Ollama (default http://localhost:11434/v1)",
            (("OLLAMA_BASE_URL", "server URL"),),
        ),
        "llamacpp": _spec(
            "llamacpp",
            make_llamacpp,
            "llama.cpp server (default http://localhost:8080/v1)",
            (("LLAMACPP_BASE_URL", "server URL"), ("LLAMACPP_API_KEY", "API key, if any")),
        ),
        "databricks": _spec(
            "databricks",
            make_databricks,
            "Databricks model serving endpoints",
            (("DATABRICKS_HOST", "workspace URL"), ("DATABRICKS_TOKEN", "access token")),
            requires=(("DATABRICKS_HOST",), ("DATABRICKS_TOKEN",)),
        ),
        "litellm": _spec(
            "litellm",
            make_litellm,
            "Any model LiteLLM can reach (it reads provider credentials itself)",
            (("LITELLM_API_BASE", "endpoint override"), ("LITELLM_API_KEY", "key override")),
            extra="litellm",
            module="litellm",
        ),
        "sim": _spec(
            "sim",
            make_sim,
            "The rlm simulator: sim/oracle or sim/echo start one in-process; other names "
            "and RLM_SIM_URL use a running `rlm sim serve` (default http://127.0.0.1:8765/v1)",
            (
                ("RLM_SIM_URL", "simulator URL"),
                ("RLM_SIM_CONTEXT_WINDOW", "input window of in-process simulators, tokens"),
            ),
        ),
        "scripted": _spec(
            "scripted",
            make_scripted,
            "Deterministic replies from a JSONL file: scripted/<path>",
        ),
    }
)


def resolve_model(
    spec: str, *, env: Mapping[str, str], providers: Mapping[str, ProviderSpec] = PROVIDERS
) -> LanguageModel:
    """The bare adapter for a ``provider/model`` (or ``provider:model``) string.

    Raises ``UnknownProviderError`` (listing the known providers), ``ConfigurationError``
    naming the variable to set, or ``MissingExtraError`` naming the extra to install.
    """
    provider, model = split_model_spec(spec)
    entry = providers.get(provider)
    if entry is None:
        known = ", ".join(sorted(providers))
        raise UnknownProviderError(
            f"unknown model provider {provider!r} in {spec!r}; known providers: {known}"
        )
    adapter = entry.factory(model, env)
    read_timeout = request_timeout(env)
    if read_timeout is not None and hasattr(adapter, "read_timeout_s"):
        adapter.read_timeout_s = read_timeout  # pyright: ignore[reportAttributeAccessIssue]
    return adapter


def request_timeout(env: Mapping[str, str]) -> float | None:
    """``RLM_REQUEST_TIMEOUT``: the longest silence (seconds) between two reads of a reply
    before the request fails with a retryable ``timeout``; None when it is not set."""
    raw = env.get("RLM_REQUEST_TIMEOUT", "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise ConfigurationError(
            f"RLM_REQUEST_TIMEOUT must be a positive number of seconds, not {raw!r}"
        )
    return value


def build_model(
    spec: str,
    *,
    env: Mapping[str, str],
    retry_policy: RetryPolicy | None = None,
    retry_budget: RetryBudget | None = None,
    breakers: BreakerBoard | None = None,
    pricer: Pricer | None = None,
    providers: Mapping[str, ProviderSpec] = PROVIDERS,
) -> RetryingModel:
    """A ready-to-use model: the adapter, priced, inside retries and the provider's breaker."""
    adapter = resolve_model(spec, env=env, providers=providers)
    priced = PricedModel(adapter, pricer)
    breaker = breakers.get(adapter.provider) if breakers is not None else None
    return RetryingModel(priced, policy=retry_policy, budget=retry_budget, breaker=breaker)


def _installed(module: str | None) -> bool:
    if module is None:
        return True
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def provider_status(
    env: Mapping[str, str], providers: Mapping[str, ProviderSpec] = PROVIDERS
) -> list[ProviderInfo]:
    """Every provider with its variables (set or not, never their values) and readiness."""

    def is_set(name: str) -> bool:
        return bool(env.get(name, "").strip())

    infos: list[ProviderInfo] = []
    for entry in providers.values():
        missing = tuple(
            " or ".join(group) for group in entry.requires if not any(map(is_set, group))
        )
        statuses = tuple(
            EnvVarStatus(v.name, v.description, is_set(v.name)) for v in entry.env_vars
        )
        infos.append(
            ProviderInfo(
                name=entry.name,
                description=entry.description,
                env=statuses,
                missing=missing,
                installed=_installed(entry.module),
                extra=entry.extra,
            )
        )
    return infos
