"""The `RunSpec` of a request: its model and limits, the server's defaults and rules.

Every server run is sandboxed strictly and loads only the plugins the operator named;
provider endpoints and credentials are never taken from a request (`schemas.RequestBody`
refuses them), so each provider is reached with what the server's environment holds.
"""

from __future__ import annotations

from rlm_engine.errors import ConfigurationError
from rlm_engine.server.schemas import RunOptions
from rlm_engine.service.spec import RunSpec
from rlm_engine.settings import Settings


class NoModelError(ConfigurationError):
    """The request names no model and the server has no default."""

    hint = 'name a model in the request ("model": "provider/name"), or set RLM_MODEL'


def spec_for(options: RunOptions, settings: Settings) -> RunSpec:
    model = options.model or settings.model
    if not model:
        raise NoModelError("no model to run with")
    instructions = "\n\n".join(t for t in (settings.instructions, options.instructions) if t)
    return RunSpec(
        model=model,
        sub_model=options.sub_model or settings.sub_model or model,
        fallback_models=tuple(options.fallback_models),
        max_iterations=options.max_iterations,
        max_depth=options.max_depth,
        max_children=options.max_children,
        max_sub_calls=options.max_sub_calls,
        max_seconds=options.max_seconds,
        max_cost_usd=options.budget_usd,
        temperature=options.temperature,
        max_output_tokens=options.max_output_tokens,
        instructions=instructions,
        plugins=settings.plugins,
        isolation="strict",
    )
