"""Reply policies: what the simulated model says to a request.

A policy is any callable ``(model, messages) -> str`` (or an awaitable of ``str``); the
messages are the request's JSON message objects. Simulator replies measure the engine,
never a model's quality.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Protocol, cast

JsonMessage = dict[str, Any]


class Policy(Protocol):
    """Decides the reply text for one chat request."""

    def __call__(self, model: str, messages: list[JsonMessage], /) -> str | Awaitable[str]: ...


class PolicyExhaustedError(RuntimeError):
    """A scripted policy was asked for more replies than it was given."""


def message_text(message: JsonMessage) -> str:
    """The text of an OpenAI-style message whose content is a string or a list of parts."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts: list[str] = []
        for part in cast(list[Any], content):
            if isinstance(part, dict):
                text = cast(dict[str, Any], part).get("text")
                if isinstance(text, str):
                    parts.append(text)
        return "".join(parts)
    return ""


async def run_policy(policy: Policy, model: str, messages: list[JsonMessage]) -> str:
    """Call ``policy`` and await its result when it is asynchronous."""
    result: object = policy(model, messages)
    if inspect.isawaitable(result):
        result = await cast(Awaitable[object], result)
    if not isinstance(result, str):
        # Policies are user code; a wrong return type should say so, not corrupt the reply.
        raise TypeError(f"policy returned {type(result).__name__}, expected str")
    return result


class ScriptedPolicy:
    """Replies from a fixed list, in order; raises ``PolicyExhaustedError`` past the end."""

    def __init__(self, replies: Iterable[str], *, cycle: bool = False) -> None:
        self._replies: Sequence[str] = tuple(replies)
        self._cycle = cycle
        self._next = 0

    @property
    def remaining(self) -> int:
        """Replies not yet given (always the full count when cycling)."""
        if self._cycle:
            return len(self._replies)
        return len(self._replies) - self._next

    def __call__(self, model: str, messages: list[JsonMessage], /) -> str:
        if self._next >= len(self._replies):
            if not self._cycle or not self._replies:
                raise PolicyExhaustedError(
                    f"scripted policy has no reply left (it was given {len(self._replies)})"
                )
            self._next = 0
        reply = self._replies[self._next]
        self._next += 1
        return reply


class CallablePolicy:
    """Adapts a function of the messages alone, sync or async, to the ``Policy`` shape."""

    def __init__(self, fn: Callable[[list[JsonMessage]], str | Awaitable[str]]) -> None:
        self._fn = fn

    def __call__(self, model: str, messages: list[JsonMessage], /) -> str | Awaitable[str]:
        return self._fn(messages)


class EchoPolicy:
    """Replies with the last user message, optionally prefixed; handy for wiring tests."""

    def __init__(self, prefix: str = "") -> None:
        self._prefix = prefix

    def __call__(self, model: str, messages: list[JsonMessage], /) -> str:
        for message in reversed(messages):
            if message.get("role") == "user":
                return self._prefix + message_text(message)
        return self._prefix
