"""Stream from any model: its own ``stream`` when it has one, else one delta from ``complete``."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence

from rlm_engine.errors import ProviderError
from rlm_engine.lm.base import (
    LanguageModel,
    StreamDone,
    StreamEvent,
    StreamingLanguageModel,
    TextDelta,
)
from rlm_engine.lm.lifecycle import close_quietly
from rlm_engine.types import Message, ModelSettings


async def open_stream(
    model: LanguageModel, messages: Sequence[Message], settings: ModelSettings | None = None
) -> AsyncGenerator[StreamEvent, None]:
    """Events of ``model``'s reply; the last one is always ``StreamDone``."""
    if isinstance(model, StreamingLanguageModel):
        async for event in model.stream(messages, settings):
            yield event
        return
    completion = await model.complete(messages, settings)
    if completion.text:
        yield TextDelta(type="text_delta", text=completion.text)
    yield StreamDone(type="done", completion=completion)


async def relay_chunks(
    chunks: AsyncIterator[object],
    read: Callable[[object], str],
    map_error: Callable[[Exception], Exception],
) -> AsyncGenerator[TextDelta, None]:
    """Text deltas of a vendor stream: ``read`` turns a chunk into its text (and may keep
    state), vendor failures become ``map_error``'s typed error, and the stream is closed
    however iteration ends."""
    try:
        async for chunk in chunks:
            text = read(chunk)
            if text:
                yield TextDelta(type="text_delta", text=text)
    except ProviderError:
        raise
    except Exception as exc:
        raise map_error(exc) from exc
    finally:
        await close_quietly(chunks)
