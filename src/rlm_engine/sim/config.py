"""Configuration of the OpenAI-compatible simulator: latency, limits and injected faults."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, get_args

FaultKind = Literal[
    "500",
    "429",
    "timeout",
    "malformed",
    "empty_choices",
    "content_filter",
    "context_length",
]

FAULT_KINDS: tuple[FaultKind, ...] = get_args(FaultKind)

# Port `rlm sim serve` listens on when none is given; the `sim/` model provider points here.
DEFAULT_SIM_PORT = 8765


@dataclass(frozen=True, slots=True)
class SimConfig:
    """How the simulator behaves.

    Latency: a reply waits ``ttft_s`` before its first token, then produces output at
    ``tokens_per_s`` (``None`` means instantly). Tokens are estimated as ``ceil(chars / 4)``.

    Faults: the n-th admitted chat request takes ``fault_script[n]`` while the script lasts
    (``None`` in the script means "no fault"); after that each fault kind in ``fault_rates``
    fires with its probability, drawn from an RNG seeded with ``seed``.
    """

    host: str = "127.0.0.1"
    port: int = 0
    ttft_s: float = 0.0
    tokens_per_s: float | None = None
    max_concurrent: int | None = None
    retry_after_s: float = 1.0
    fault_script: tuple[FaultKind | None, ...] = ()
    fault_rates: Mapping[FaultKind, float] = field(default_factory=lambda: {})
    model_faults: Mapping[str, FaultKind] = field(default_factory=lambda: {})
    """Every request for one of these models gets its fault (e.g. a refusing model)."""
    seed: int = 0
    timeout_hang_s: float = 60.0
    context_window_tokens: int | None = None
    api_key: str | None = None
    models: tuple[str, ...] = ("sim-model",)
    stream_chunk_chars: int = 16
    max_body_bytes: int = 256 * 1024 * 1024

    def __post_init__(self) -> None:
        scripted = (k for k in self.fault_script if k is not None)
        for kind in (*self.fault_rates, *scripted, *self.model_faults.values()):
            if kind not in FAULT_KINDS:
                raise ValueError(f"unknown fault kind {kind!r}; known: {', '.join(FAULT_KINDS)}")
        if self.tokens_per_s is not None and self.tokens_per_s <= 0:
            raise ValueError("tokens_per_s must be positive (or None for instant output)")
        if self.max_concurrent is not None and self.max_concurrent < 1:
            raise ValueError("max_concurrent must be at least 1 (or None for no cap)")
        if self.stream_chunk_chars < 1:
            raise ValueError("stream_chunk_chars must be at least 1")

    def generation_time_s(self, output_tokens: int) -> float:
        """Seconds it takes to produce ``output_tokens`` after the first token."""
        if self.tokens_per_s is None:
            return 0.0
        return output_tokens / self.tokens_per_s


def estimate_tokens(text: str) -> int:
    """The simulator's token estimate: one token per four characters, rounded up."""
    return math.ceil(len(text) / 4)


def tokens_for_chars(count: int) -> int:
    """Token estimate for ``count`` characters of text."""
    return math.ceil(count / 4)
