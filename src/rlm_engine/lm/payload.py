"""Read loosely typed vendor payloads (SDK objects, look-alikes or dicts) defensively."""

from __future__ import annotations

from typing import Any, cast

from rlm_engine.errors import ProviderError


def field(obj: object, name: str) -> Any:
    """``obj.name`` or ``obj[name]``; ``None`` when absent."""
    if isinstance(obj, dict):
        return cast(dict[str, Any], obj).get(name)
    return getattr(obj, name, None)


def as_int(value: object) -> int:
    """An integer token count, treating anything missing or odd as zero."""
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def malformed(provider: str, detail: str) -> ProviderError:
    """A retryable ``malformed`` error: the reply could not be read."""
    return ProviderError(
        f"{provider}: malformed response: {detail}", kind="malformed", provider=provider
    )
