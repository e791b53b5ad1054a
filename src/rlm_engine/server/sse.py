"""A run's stored events as Server-Sent Events.

``id:`` is the event's stored sequence number, ``event:`` its type and ``data:`` its stored
body, unchanged; a reconnecting client sends the last id back (``Last-Event-ID``) and
resumes right after it. A comment line every `PING_S` keeps proxies from closing a stream
that is quiet while a model thinks.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from sse_starlette import EventSourceResponse, ServerSentEvent

from rlm_engine.store.records import StoredEvent

PING_S = 15
# Sequence numbers are 64-bit in the store; a larger client value means "after everything".
MAX_SEQ = 2**62


def sse_event(event: StoredEvent) -> ServerSentEvent:
    return ServerSentEvent(
        data=json.dumps(event.body, ensure_ascii=False, separators=(",", ":")),
        event=event.type,
        id=str(event.seq),
    )


async def _messages(batches: AsyncIterator[list[StoredEvent]]) -> AsyncIterator[bytes]:
    # One write per batch the store handed out: a busy server streaming many runs spends
    # its time in socket sends when every event is written on its own.
    async for batch in batches:
        yield b"".join(sse_event(event).encode() for event in batch)


def event_stream(batches: AsyncIterator[list[StoredEvent]]) -> EventSourceResponse:
    """The response streaming ``batches`` of events; it ends when they do (the run is
    over)."""
    return EventSourceResponse(
        _messages(batches),
        ping=PING_S,
        # Proxies that buffer (nginx) would hold events back until the stream ends.
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def resume_after(last_event_id: str | None, after: int | None) -> int:
    """The sequence number to stream after: the client's ``Last-Event-ID`` (a reconnect)
    wins over ``?after=``; -1 streams from the first event."""
    text = (last_event_id or "").strip()
    if text.isascii() and text.lstrip("-").isdigit():
        return min(MAX_SEQ, max(-1, int(text)))
    return -1 if after is None else min(MAX_SEQ, max(-1, after))
