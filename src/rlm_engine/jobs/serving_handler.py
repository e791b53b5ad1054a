"""The host handler of a cell run by the executor job on Databricks.

There the orchestrator is another job run, on another cluster, so there is no relay back
to it: the executor answers its cell's sub-calls itself, through Databricks Model Serving
(``databricks/<endpoint>`` of the project's model registry) with the job's own identity.
No key is copied into the cell: the sandbox only sees the answers. The endpoint is the
run's sub-model (kept in the artifact's metadata as ``serving_model``); a cell may name
another endpoint (``llm_query(p, model="databricks/other")`` or just ``"other"``).

``rlm_query`` needs the orchestrator's engine (a child RLM with its own loop and budgets),
so it is refused with a typed error that says to use ``llm_query``; so are memory and
tools, which live in the orchestrator's run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

from rlm_engine.errors import ConfigurationError, RLMError

if TYPE_CHECKING:
    from rlm_engine.lm.base import LanguageModel

SERVING_MODEL_KEY = "serving_model"
PROVIDER = "databricks"
MAX_PARALLEL = 8


class NotAvailableInExecutor(RLMError):
    """A host call that only the orchestrator can serve, made by a Databricks executor cell."""


def serving_model_name(model: str | None, default: str | None) -> str:
    """``databricks/<endpoint>`` for what the cell (or the run) asked for."""
    name = model or default
    if not name:
        raise ConfigurationError(
            "this artifact names no serving endpoint for llm_query",
            hint="start the orchestrator with --sub-model databricks/ENDPOINT (or --model)",
        )
    if "/" not in name and ":" not in name:
        return f"{PROVIDER}/{name}"
    if not name.startswith(f"{PROVIDER}/"):
        raise ConfigurationError(
            f"a Databricks executor reaches models through Model Serving only, not {name!r}",
            hint="name a serving endpoint: databricks/ENDPOINT",
        )
    return name


class ServingHandler:
    """``llm_query`` / ``llm_query_batched`` through Model Serving; other calls refused."""

    def __init__(
        self,
        default_model: str | None,
        env: Mapping[str, str],
        *,
        max_parallel: int = MAX_PARALLEL,
    ) -> None:
        self.default_model = default_model
        self._env = dict(env)
        self._models: dict[str, LanguageModel] = {}
        self._slots = asyncio.Semaphore(max_parallel)

    def _model(self, requested: object) -> LanguageModel:
        from rlm_engine.lm.registry import resolve_model

        asked = requested if isinstance(requested, str) and requested else None
        name = serving_model_name(asked, self.default_model)
        model = self._models.get(name)
        if model is None:
            model = resolve_model(name, env=self._env)
            self._models[name] = model
        return model

    async def _ask(self, model: LanguageModel, prompt: str) -> str:
        from rlm_engine.types import Message

        async with self._slots:
            completion = await model.complete([Message("user", prompt)])
        return completion.text

    async def __call__(self, method: str, params: Mapping[str, Any]) -> Any:
        if method == "llm_query":
            model = self._model(params.get("model"))
            return await self._ask(model, str(params.get("prompt") or ""))
        if method == "llm_query_batched":
            model = self._model(params.get("model"))
            prompts = cast(list[Any], params.get("prompts") or [])
            return list(await asyncio.gather(*(self._ask(model, str(p)) for p in prompts)))
        if method in ("rlm_query", "rlm_query_batched"):
            raise NotAvailableInExecutor(
                f"{method} is not available in a cell run by the Databricks executor job: a "
                "child RLM runs in the orchestrator, which this job cannot reach",
                hint="use llm_query / llm_query_batched here (they go through Model Serving), "
                "or run the orchestrator with --executor inline to use rlm_query",
            )
        raise NotAvailableInExecutor(
            f"{method} is not available in a cell run by the Databricks executor job (memory "
            "and tools live in the orchestrator's run)",
            hint="pass what the cell needs in its context, or run with --executor inline",
        )
