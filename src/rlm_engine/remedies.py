"""What to do next after a failure: one table per cause, read by errors and the CLI.

A remedy is chosen from the error's type (and a provider error's ``kind``); the stored text
of a finished run is read only for runs whose exception is long gone (``rlm runs show``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where a provider is reached and how it is authorised."""

    url_var: str | None
    key_var: str | None = None
    start: str | None = None
    """How to start the provider's server, for providers that run locally."""


ENDPOINTS: dict[str, Endpoint] = {
    "openai": Endpoint("OPENAI_BASE_URL", "OPENAI_API_KEY"),
    "anthropic": Endpoint("ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY"),
    "gemini": Endpoint(None, "GEMINI_API_KEY"),
    "vllm": Endpoint("VLLM_BASE_URL", "VLLM_API_KEY", "vllm serve MODEL"),
    "ollama": Endpoint("OLLAMA_BASE_URL", None, "ollama serve"),
    "llamacpp": Endpoint("LLAMACPP_BASE_URL", "LLAMACPP_API_KEY", "llama-server -m MODEL.gguf"),
    "databricks": Endpoint("DATABRICKS_HOST", "DATABRICKS_TOKEN"),
    "litellm": Endpoint("LITELLM_API_BASE", "LITELLM_API_KEY"),
    "sim": Endpoint("RLM_SIM_URL", None, "rlm sim serve"),
}


def provider_hint(provider: str, kind: str) -> str:
    """What to do about a provider error of ``kind`` (an `errors.ProviderErrorKind`)."""
    endpoint = ENDPOINTS.get(provider)
    url_var = (endpoint.url_var if endpoint else None) or "the provider's base URL"
    key_var = endpoint.key_var if endpoint and endpoint.key_var else None
    if kind == "connection":
        if endpoint is not None and endpoint.start is not None:
            return (
                f"nothing answered: start the server (`{endpoint.start}`) "
                f"or point {url_var} at a running one"
            )
        return f"check the network and {url_var} (is the endpoint up and the URL right?)"
    if kind == "auth":
        key = key_var or "the provider's API key variable"
        return f"set {key} to a valid key (`rlm models` lists what each provider needs)"
    return _KIND_HINTS.get(kind, "").format(url_var=url_var)


_KIND_HINTS: dict[str, str] = {
    "server": "the provider failed (HTTP 5xx); wait for it to recover, or add --fallback-model",
    "timeout": "the provider did not answer in time; wait until it is less busy, or add "
    "--fallback-model",
    "malformed": "the reply was not a valid API response; check that {url_var} points at "
    "an OpenAI-compatible endpoint",
    "rate_limit": "the provider is rate limiting; wait, lower --max-concurrency, "
    "or add --fallback-model",
    "not_found": "the model or endpoint does not exist; check the --model name "
    "(`rlm models`) and {url_var}",
    "bad_request": "the provider refused the request; check the --model name and its settings",
    "context_length": "the prompt is longer than the model's window; use a model with a "
    "larger context window",
    "content_filter": "the provider's content filter refused the request; rephrase the "
    "question or use another model",
    "circuit_open": "the provider failed repeatedly and calls to it are paused; "
    "try again in a minute",
}

# Which limit to raise for each budget of `BudgetExceeded.budget`.
BUDGET_HINTS: dict[str, str] = {
    "children": "raise --max-children",
    "cost": "raise --budget-usd",
    "sub_calls": "raise --max-sub-calls",
    "time": "raise --max-seconds",
    "tokens": "raise --max-tokens",
}

# Remedies by error class name, for classes that do not carry their own `hint`.
TYPE_HINTS: dict[str, str] = {
    "NondeterminismError": "the recorded run no longer replays the same way (changed code, "
    "model, settings or a nondeterministic cell); `rlm runs resume RUN --accept-divergence` "
    "goes on from the changed outputs, or start afresh with `rlm ask`",
    "ReplayExhausted": "the journal ends before the run did (it was interrupted or the "
    "replay asked for a call it never made); `rlm runs resume RUN` finishes an interrupted "
    "run, or start afresh with `rlm ask`",
    "ContextError": "check the context path and its format (--context)",
    "ContextChangedError": "the context files changed since the run started; restore them "
    "or start afresh with `rlm ask`",
    "SandboxDied": "the sandbox process died (memory or a crash); lower the work per cell "
    "or raise --cell-timeout",
    "SandboxError": "the sandbox failed; check that the isolation backend works (--isolation)",
    "RunNotFoundError": "`rlm runs list` shows the recorded runs",
    "SessionNotFoundError": "`rlm sessions list` shows the sessions",
    "StoreUnavailableError": "check RLM_HOME (or RLM_STORE_URL): it must be writable",
    "StoreWriteError": "the store could not write (disk full, read-only or locked): free "
    "space under RLM_HOME (or RLM_STORE_URL's database) or make it writable",
    "StoreError": "check RLM_HOME (or RLM_STORE_URL): it must be writable",
    "PluginError": "check the plugin (RLM_PLUGINS, --plugin) or run with --no-default-plugins",
    "ScriptExhaustedError": "the scripted model has no more replies; add lines to its file",
}


def type_hint(names: Iterable[str]) -> str:
    """The remedy for the first class (most derived first) in ``names`` the table knows."""
    for name in names:
        hint = TYPE_HINTS.get(name)
        if hint is not None:
            return hint
    return ""


_DETAIL_TYPE = re.compile(r"^\s*([A-Z]\w*(?:Error|Exceeded|Died))\b")
_DETAIL_PROVIDER = re.compile(r"^\s*ProviderError: (\w+)")
_DETAIL_KINDS: tuple[tuple[str, str], ...] = (
    ("connection failed", "connection"),
    ("timed out", "timeout"),
    ("circuit", "circuit_open"),
    ("malformed response", "malformed"),
)


def detail_hint(detail: str, kind: str | None = None) -> str:
    """The remedy for a stored failure text (``Type: message``) of a finished run; ``kind``
    is the failure kind the store recorded with it, when it did."""
    match = _DETAIL_TYPE.match(detail)
    name = match.group(1) if match else ""
    if kind == "divergence":
        name = "NondeterminismError"
    if name != "ProviderError" and kind not in _PROVIDER_KINDS:
        return type_hint((name,)) if name else ""
    provider = _DETAIL_PROVIDER.match(detail)
    found = kind if kind in _PROVIDER_KINDS else ""
    status = re.search(r"HTTP \d+ \((\w+)\)", detail)
    if not found and status:
        found = status.group(1)
    for needle, guess in _DETAIL_KINDS:
        if not found and needle in detail:
            found = guess
    return provider_hint(provider.group(1) if provider else "", found or "malformed")


_PROVIDER_KINDS = frozenset({*_KIND_HINTS, "connection", "auth"})
