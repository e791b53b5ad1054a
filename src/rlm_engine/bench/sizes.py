"""Context sizes: ``16k``, ``128k``, ``1m`` tokens (powers of two, as in the RLM paper)."""

from __future__ import annotations

import re

from rlm_engine.errors import ConfigurationError

# The generators' and the simulator's token estimate: four characters per token.
CHARS_PER_TOKEN = 4

_SIZE = re.compile(r"^(\d+(?:\.\d+)?)([km]?)$")
_UNIT = {"": 1, "k": 1024, "m": 1024 * 1024}


def parse_size(text: str) -> int:
    """Tokens in a size like ``16k`` (16,384), ``1m`` (1,048,576) or ``5000``."""
    match = _SIZE.match(text.strip().lower())
    if match is None:
        raise ConfigurationError(f"bad size {text!r}: use e.g. 16k, 128k, 1m or a token count")
    tokens = int(float(match.group(1)) * _UNIT[match.group(2)])
    if tokens < 1024:
        raise ConfigurationError(f"size {text!r} is too small: the minimum is 1k tokens")
    return tokens


def parse_sizes(text: str) -> list[int]:
    """Sizes from a comma-separated list, in the order given, without duplicates."""
    sizes: list[int] = []
    for part in text.split(","):
        if part.strip():
            size = parse_size(part)
            if size not in sizes:
                sizes.append(size)
    if not sizes:
        raise ConfigurationError("no sizes given")
    return sizes


def format_size(tokens: int) -> str:
    """The short form of a token count: 16384 -> ``16k``, 1048576 -> ``1m``."""
    for suffix, unit in (("m", _UNIT["m"]), ("k", _UNIT["k"])):
        if tokens % unit == 0:
            return f"{tokens // unit}{suffix}"
    return str(tokens)
