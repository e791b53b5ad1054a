"""The RLM a run's spec describes, with its plugins and memory.

A run's spec is stored with it, so a resume rebuilds the same RLM: same models (request
hashes include the model), same limits, same contexts."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from rlm_engine.engine.rlm import RLM
from rlm_engine.engine.state import SandboxFactory
from rlm_engine.events import Event
from rlm_engine.otel_setup import tracing_from_env
from rlm_engine.plugins.base import Plugin
from rlm_engine.plugins.chain import load_entry_point_plugins
from rlm_engine.plugins.defaults import default_plugins
from rlm_engine.service.principal import Principal
from rlm_engine.service.provider_env import provider_env
from rlm_engine.service.spec import RunSpec
from rlm_engine.service.tool_sets import tools_for
from rlm_engine.settings import Settings
from rlm_engine.store.memory_mapping import StoreMemory
from rlm_engine.store.protocol import Store
from rlm_engine.store.records import MemoryScope
from rlm_engine.store.response_cache import StoreResponseCache
from rlm_engine.types import ModelSettings


def plugins_for(spec: RunSpec, settings: Settings) -> list[Plugin]:
    """Defaults (unless turned off), named entry-point plugins, and tracing when an OTLP
    endpoint is configured."""
    plugins: list[Plugin] = [] if spec.no_default_plugins else default_plugins()
    if spec.plugins:  # looking the entry points up reads every installed package's metadata
        plugins += load_entry_point_plugins(list(spec.plugins))
    tracing = tracing_from_env(settings.env)
    if tracing is not None:
        plugins.append(tracing)
    return plugins


def memory_for(store: Store, session: str | None, who: Principal) -> StoreMemory:
    """A session's memory, or the user's own (scoped by tenant: `Principal.memory_name`)."""
    scope = MemoryScope.session(session) if session else MemoryScope.user(who.memory_name)
    return StoreMemory(store, scope)


def build_rlm(
    spec: RunSpec,
    settings: Settings,
    *,
    on_event: Callable[[Event], Awaitable[None] | None],
    memory: Any = None,
    persistent: bool = False,
    offline: bool = False,
    store: Store | None = None,
    sandbox_factory: SandboxFactory | None = None,
) -> RLM:
    """The RLM ``spec`` describes; with a ``store``, cached sub-call replies are kept in it
    and shared between runs. ``offline``: stand-in models that refuse every call (a replay
    reads each reply from the journal), so no key is needed."""
    from rlm_engine.engine.journal_store import OfflineModel
    from rlm_engine.lm.spec import canonical_model

    model: Any = spec.model
    sub_model: Any = spec.sub_model or spec.model
    config = spec.config()
    config["root_settings"] = ModelSettings(
        temperature=spec.temperature, max_output_tokens=spec.max_output_tokens
    )
    config["sub_settings"] = ModelSettings(
        temperature=spec.sub_temperature, max_output_tokens=spec.sub_max_output_tokens
    )
    env = settings.env
    if not offline:  # an offline replay calls no model, so it needs no key
        env = provider_env(env, spec.model, spec.base_url, spec.api_key_env)
    if spec.request_timeout_s is not None:  # stored with the run, so a resume waits as long
        env = {**env, "RLM_REQUEST_TIMEOUT": str(spec.request_timeout_s)}
    fallbacks = list(spec.fallback_models)
    output_schema = None
    if spec.output_schema is not None:
        from rlm_engine.engine.json_output import model_for_json_schema

        output_schema = model_for_json_schema(spec.output_schema)
    if offline:
        model = OfflineModel(canonical_model(model))
        sub_model = OfflineModel(canonical_model(sub_model))
        fallbacks = []
    return RLM(
        model,
        sub_model,
        env=env,
        fallback_models=fallbacks,
        plugins=plugins_for(spec, settings),
        instructions=spec.instructions,
        isolation=spec.isolation,
        memory=memory,
        persistent=persistent,
        on_event=on_event,
        response_store=None if store is None or offline else StoreResponseCache(store),
        sandbox_factory=sandbox_factory,
        output_schema=output_schema,
        tools=tools_for(spec.tools),
        **config,
    )
