"""A deterministic model for tests, replays and demos: replies come from a script.

Usage is estimated (one token per four characters), so token and cost accounting can be
exercised without a provider.
"""

from __future__ import annotations

import inspect
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

from rlm_engine.errors import ConfigurationError, RLMError
from rlm_engine.lm.base import StreamDone, StreamEvent, TextDelta
from rlm_engine.lm.tokens import estimate_usage
from rlm_engine.types import Completion, Message, ModelSettings

ReplyFunction = Callable[[list[Message]], str | Awaitable[str]]


class ScriptExhaustedError(RLMError):
    """A scripted model was called more often than it has replies."""


def load_replies(path: str | Path) -> list[str]:
    """Replies from a JSONL file: each line a JSON string or ``{"reply": "..."}``."""
    file = Path(path)
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigurationError(f"cannot read scripted replies from {file}: {exc}") from exc
    replies: list[str] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item: Any = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigurationError(f"{file}:{number}: not valid JSON ({exc.msg})") from exc
        if isinstance(item, dict):
            item = cast(dict[str, Any], item).get("reply")
        if not isinstance(item, str):
            raise ConfigurationError(
                f'{file}:{number}: expected a JSON string or {{"reply": "..."}}'
            )
        replies.append(item)
    return replies


def _apply_settings(text: str, settings: ModelSettings) -> tuple[str, str]:
    """Honour stop sequences and the output limit the way a provider would."""
    finish = "stop"
    for stop in settings.stop:
        index = text.find(stop)
        if index >= 0:
            text = text[:index]
    limit = settings.max_output_tokens
    if limit is not None and len(text) > limit * 4:
        text, finish = text[: limit * 4], "length"
    return text, finish


class ScriptedModel:
    """Replies from a list (in order), a JSONL file, or a function of the messages.

    Every call's messages are kept in ``calls`` so tests can inspect prompts.
    """

    def __init__(
        self,
        replies: Iterable[str] | ReplyFunction,
        *,
        name: str = "scripted/default",
        stream_parts: int = 3,
    ) -> None:
        if callable(replies):
            self._function: ReplyFunction | None = replies
            self._replies: list[str] = []
        else:
            self._function = None
            self._replies = list(replies)
        self._name = name
        self._provider = name.split("/", 1)[0] if "/" in name else "scripted"
        self._stream_parts = max(1, stream_parts)
        self._next = 0
        self.calls: list[tuple[Message, ...]] = []

    @classmethod
    def from_jsonl(cls, path: str | Path, *, name: str | None = None) -> ScriptedModel:
        """A model replaying the replies of a JSONL file."""
        return cls(load_replies(path), name=name or f"scripted/{path}")

    @property
    def name(self) -> str:
        """The canonical ``provider/model`` string."""
        return self._name

    @property
    def provider(self) -> str:
        """The provider name, e.g. ``openai``."""
        return self._provider

    @property
    def remaining(self) -> int | None:
        """Replies left in the script (``None`` for a reply function)."""
        if self._function is not None:
            return None
        return len(self._replies) - self._next

    async def _reply(self, messages: Sequence[Message]) -> str:
        self.calls.append(tuple(messages))
        if self._function is not None:
            result: object = self._function(list(messages))
            if inspect.isawaitable(result):
                result = await cast(Awaitable[object], result)
            if not isinstance(result, str):
                raise TypeError(f"scripted reply function returned {type(result).__name__}")
            return result
        if self._next >= len(self._replies):
            raise ScriptExhaustedError(
                f"{self._name} has no reply left: it was given {len(self._replies)} and "
                f"this is call {len(self.calls)}"
            )
        reply = self._replies[self._next]
        self._next += 1
        return reply

    async def complete(
        self, messages: Sequence[Message], settings: ModelSettings | None = None
    ) -> Completion:
        """The next scripted reply."""
        started = time.perf_counter()
        text, finish = _apply_settings(await self._reply(messages), settings or ModelSettings())
        return Completion(
            text=text,
            model=self._name,
            usage=estimate_usage(messages, text),
            latency_s=time.perf_counter() - started,
            finish_reason=finish,
            provider=self._provider,
        )

    async def stream(
        self, messages: Sequence[Message], settings: ModelSettings | None = None
    ) -> AsyncIterator[StreamEvent]:
        """The next scripted reply in a few text deltas, then ``StreamDone``."""
        completion = await self.complete(messages, settings)
        text = completion.text
        size = max(1, -(-len(text) // self._stream_parts))
        for start in range(0, len(text), size):
            yield TextDelta(type="text_delta", text=text[start : start + size])
        yield StreamDone(type="done", completion=completion)


def make_scripted(model: str, env: Mapping[str, str]) -> ScriptedModel:
    """``scripted/<path-to-jsonl>``: replay the replies of a JSONL file."""
    return ScriptedModel.from_jsonl(model, name=f"scripted/{model}")
