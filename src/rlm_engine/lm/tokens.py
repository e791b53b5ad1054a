"""Token estimates for when a provider reports no usage (and for scripted models)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from rlm_engine.types import Message, Usage


def estimate_tokens(text: str) -> int:
    """One token per four characters, rounded up: a rough but stable estimate."""
    return math.ceil(len(text) / 4)


def estimate_usage(messages: Sequence[Message], reply: str) -> Usage:
    """Usage of one call estimated from the prompt and reply text."""
    prompt_chars = sum(len(message.content) for message in messages)
    return Usage(
        input_tokens=math.ceil(prompt_chars / 4),
        output_tokens=estimate_tokens(reply),
        requests=1,
    )
