"""Settings of one RLM. Plain data; nothing here reads the environment."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from rlm_engine.errors import ConfigurationError
from rlm_engine.lm.cache import CacheMode
from rlm_engine.types import ModelSettings

OutputMode = Literal["truncate", "digest"]

DEFAULT_MAX_CHILDREN = 1_000
DEFAULT_MAX_SUB_CALLS = 10_000
"""Sub-calls per run unless set: far above any sane fan-out, far below a runaway loop."""
DEFAULT_MAX_PROMPT_BYTES = 8 * 1024 * 1024
DEFAULT_MAX_ANSWER_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class RLMConfig:
    max_iterations: int = 30
    max_depth: int = 1
    """1: the root's sub-calls are plain model calls. 2: ``rlm_query`` starts child RLMs."""
    max_sub_calls: int | None = DEFAULT_MAX_SUB_CALLS
    """``None`` removes the cap; a batch larger than what is left is refused whole."""
    max_prompt_bytes: int = DEFAULT_MAX_PROMPT_BYTES
    """UTF-8 bytes of one sub-call prompt, checked by the host before any request."""
    sub_context_tokens: int | None = None
    """Input window of the sub-model in tokens; ``None``: the price catalogue's, if known."""
    max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES
    """UTF-8 bytes of a FINAL answer or SUBMIT fields; a larger one is refused."""
    max_concurrency: int = 32
    max_child_concurrency: int = 4
    """Child RLMs running at once at each depth (slots are per depth: see engine.recursion)."""
    max_children: int | None = DEFAULT_MAX_CHILDREN
    """Child RLMs one run may start in all; a batch that would pass it is refused whole."""
    max_tokens: int | None = None
    max_cost_usd: float | None = None
    max_seconds: float | None = None
    max_output_chars: int = 20_000
    output_mode: OutputMode = "truncate"
    cell_timeout_s: float = 120.0
    memory_mb: int = 2048
    """One memory budget in MiB for the REPL and every process it starts (``0``: none)."""
    system_prompt: str | None = None
    root_context_tokens: int = 128_000
    """Size of the root model's window, used to decide when to compact the history."""
    capsule_share: float = 0.6
    digest_input_chars: int = 400_000
    response_cache: CacheMode = "auto"
    """Cache identical sub-calls: "auto" only at temperature 0, "on" always, "off" never."""
    retry_budget_s: float = 300.0
    """Seconds a run may spend waiting between retries of failed model calls."""
    root_settings: ModelSettings = ModelSettings()
    sub_settings: ModelSettings = ModelSettings()

    def __post_init__(self) -> None:
        # keyword -> (allowed, the range as the message states it)
        checks: dict[str, tuple[bool, str]] = {
            "max_iterations": (self.max_iterations >= 1, ">= 1"),
            "max_depth": (self.max_depth >= 1, ">= 1"),
            "max_sub_calls": (self.max_sub_calls is None or self.max_sub_calls >= 0, ">= 0"),
            "max_prompt_bytes": (self.max_prompt_bytes >= 1024, ">= 1024"),
            "sub_context_tokens": (
                self.sub_context_tokens is None or self.sub_context_tokens >= 1,
                ">= 1",
            ),
            "max_answer_bytes": (self.max_answer_bytes >= 1024, ">= 1024"),
            "max_concurrency": (self.max_concurrency >= 1, ">= 1"),
            "max_child_concurrency": (self.max_child_concurrency >= 1, ">= 1"),
            "max_children": (self.max_children is None or self.max_children >= 0, ">= 0"),
            "max_tokens": (self.max_tokens is None or self.max_tokens >= 1, ">= 1"),
            "max_cost_usd": (self.max_cost_usd is None or self.max_cost_usd > 0, "> 0"),
            "max_seconds": (self.max_seconds is None or self.max_seconds > 0, "> 0"),
            "max_output_chars": (self.max_output_chars >= 200, ">= 200"),
            "cell_timeout_s": (self.cell_timeout_s > 0, "> 0"),
            "memory_mb": (self.memory_mb == 0 or self.memory_mb >= 64, "0 or >= 64"),
            "capsule_share": (0 < self.capsule_share <= 1, "in (0, 1]"),
        }
        bad = [
            f"{name} must be {allowed}, got {getattr(self, name)!r}"
            for name, (ok, allowed) in checks.items()
            if not ok
        ]
        if bad:
            raise ConfigurationError(f"invalid RLM settings: {'; '.join(bad)}")
        if self.output_mode not in ("truncate", "digest"):
            raise ConfigurationError(
                f"output_mode must be 'truncate' or 'digest', got {self.output_mode!r}"
            )
