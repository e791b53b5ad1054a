"""Model providers: adapters, the ``provider/model`` registry, retries, breakers, pricing.

Build a model the engine can use with ``build_model("openai/gpt-5-mini", env=os.environ)``.
Vendor SDKs are imported only when a model of theirs is built.
"""

from rlm_engine.lm.base import (
    LanguageModel,
    StreamDone,
    StreamEvent,
    StreamingLanguageModel,
    TextDelta,
)
from rlm_engine.lm.lifecycle import aclose_model
from rlm_engine.lm.pricing import PricedModel, PriceOverride, Pricer
from rlm_engine.lm.registry import (
    PROVIDERS,
    EnvVar,
    EnvVarStatus,
    ProviderInfo,
    ProviderSpec,
    build_model,
    provider_status,
    resolve_model,
)
from rlm_engine.lm.retry import (
    BreakerBoard,
    CircuitBreaker,
    RetryBudget,
    RetryingModel,
    RetryNotice,
    RetryPolicy,
)
from rlm_engine.lm.scripted import ScriptedModel, ScriptExhaustedError
from rlm_engine.lm.spec import canonical_model, split_model_spec
from rlm_engine.lm.streaming import open_stream

__all__ = [
    "PROVIDERS",
    "BreakerBoard",
    "CircuitBreaker",
    "EnvVar",
    "EnvVarStatus",
    "LanguageModel",
    "PriceOverride",
    "PricedModel",
    "Pricer",
    "ProviderInfo",
    "ProviderSpec",
    "RetryBudget",
    "RetryNotice",
    "RetryPolicy",
    "RetryingModel",
    "ScriptExhaustedError",
    "ScriptedModel",
    "StreamDone",
    "StreamEvent",
    "StreamingLanguageModel",
    "TextDelta",
    "aclose_model",
    "build_model",
    "canonical_model",
    "open_stream",
    "provider_status",
    "resolve_model",
    "split_model_spec",
]
