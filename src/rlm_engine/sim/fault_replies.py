"""Error and fault replies of the simulator: rate limits, refusals, broken bodies, hangs."""

from __future__ import annotations

import asyncio
import contextlib
import json

from rlm_engine.sim.chat_request import ChatRequest
from rlm_engine.sim.config import FaultKind, SimConfig, tokens_for_chars
from rlm_engine.sim.http import SseWriter, write_json, write_response
from rlm_engine.sim.wire import (
    empty_choices_payload,
    error_payload,
    usage_chunk_payload,
    usage_payload,
)

# A body cut off mid-array: what a proxy truncating a response produces.
BROKEN_JSON = '{"id": "chatcmpl-sim", "choices": ['


async def write_error(
    writer: asyncio.StreamWriter,
    status: int,
    message: str,
    keep_alive: bool,
    *,
    error_type: str = "invalid_request_error",
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> None:
    """An OpenAI-style JSON error response."""
    payload = error_payload(message, error_type, code)
    await write_json(writer, status, payload, keep_alive=keep_alive, extra_headers=headers)


async def write_rate_limited(
    writer: asyncio.StreamWriter, message: str, retry_after_s: float, keep_alive: bool
) -> None:
    """A 429 with ``Retry-After`` (whole seconds when integral, as servers usually send)."""
    text = str(int(retry_after_s)) if float(retry_after_s).is_integer() else f"{retry_after_s:g}"
    await write_error(
        writer,
        429,
        message,
        keep_alive,
        error_type="rate_limit_exceeded",
        code="rate_limit_exceeded",
        headers={"Retry-After": text},
    )


async def write_context_length(
    writer: asyncio.StreamWriter, prompt_tokens: int | None, keep_alive: bool
) -> int:
    """A 400 ``context_length_exceeded``, worded like OpenAI's."""
    detail = f" (prompt has {prompt_tokens} tokens)" if prompt_tokens is not None else ""
    message = f"This model's maximum context length was exceeded{detail}."
    await write_error(writer, 400, message, keep_alive, code="context_length_exceeded")
    return 400


async def fault_reply(
    fault: FaultKind,
    config: SimConfig,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    keep_alive: bool,
) -> int | None:
    """Reply with an error fault; the status, or ``None`` when the connection is dropped."""
    if fault == "timeout":
        # Hang until the client gives up (closes) or the hang time passes, then drop.
        with contextlib.suppress(TimeoutError, ConnectionError):
            await asyncio.wait_for(reader.read(1), config.timeout_hang_s)
        return None
    if fault == "429":
        await write_rate_limited(writer, "simulated rate limit", config.retry_after_s, keep_alive)
        return 429
    if fault == "content_filter":
        message = "simulated content filter: the prompt was rejected"
        await write_error(writer, 400, message, keep_alive, code="content_filter")
        return 400
    if fault == "context_length":
        return await write_context_length(writer, None, keep_alive)
    await write_error(writer, 500, "simulated server error", keep_alive, error_type="server_error")
    return 500


async def broken_reply(
    chat: ChatRequest,
    fault: FaultKind,
    config: SimConfig,
    request_id: str,
    writer: asyncio.StreamWriter,
    keep_alive: bool,
) -> int:
    """A 200 reply with an invalid JSON body (``malformed``) or no choices.

    It does not consume a policy reply, so a retry gets the reply this attempt would
    have had.
    """
    if config.ttft_s > 0:
        await asyncio.sleep(config.ttft_s)
    usage = usage_payload(tokens_for_chars(chat.prompt_chars), 0)
    if chat.stream:
        sse = SseWriter(writer)
        await sse.start(keep_alive=keep_alive)
        if fault == "malformed":
            await sse.send(BROKEN_JSON)
        else:
            await sse.send(json.dumps(usage_chunk_payload(request_id, chat.model, usage)))
        await sse.send("[DONE]")
        await sse.finish()
    elif fault == "malformed":
        await write_response(writer, 200, BROKEN_JSON.encode(), keep_alive=keep_alive)
    else:
        payload = empty_choices_payload(request_id, chat.model, usage)
        await write_json(writer, 200, payload, keep_alive=keep_alive)
    return 200
