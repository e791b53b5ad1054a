"""What a started event's closing event says when the work it announced raised.

Every ``*_started`` event is closed by its ``*_finished`` (or ``model_call_failed``) however
the work ends, a cancellation included; this is the ``error`` text those carry.
"""

from __future__ import annotations

import asyncio

from rlm_engine.errors import RLMError
from rlm_engine.events import CANCELLED


def failure_text(exc: BaseException) -> str:
    """``cancelled`` (``events.CANCELLED``) for a cancellation; an error's own message
    (this package's errors say what went wrong); any other exception prefixed with its
    class."""
    if isinstance(exc, asyncio.CancelledError):
        reason = str(exc)
        return f"{CANCELLED}: {reason}" if reason else CANCELLED
    if isinstance(exc, RLMError):
        return str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
