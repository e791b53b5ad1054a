"""An OpenAI-compatible chat-completions server on loopback, for tests and benchmarks.

Built on ``asyncio.start_server``: every connection is a coroutine, latency is
``asyncio.sleep``, so thousands of requests can be in flight without a thread each.
Replies come from a ``Policy``; they measure the engine, never a model's quality.
"""

from __future__ import annotations

import asyncio
import json
import time
from types import TracebackType
from typing import Any

from rlm_engine.sim.chat_request import BadRequest, ChatRequest, RequestRecord, parse_chat
from rlm_engine.sim.config import FaultKind, SimConfig, estimate_tokens, tokens_for_chars
from rlm_engine.sim.fault_replies import (
    broken_reply,
    fault_reply,
    write_context_length,
    write_error,
    write_rate_limited,
)
from rlm_engine.sim.faults import FaultPlan
from rlm_engine.sim.http import (
    HttpParseError,
    HttpRequest,
    SseWriter,
    read_request,
    write_json,
)
from rlm_engine.sim.policies import EchoPolicy, Policy, PolicyExhaustedError, run_policy
from rlm_engine.sim.wire import (
    chunk_payload,
    completion_payload,
    error_payload,
    models_payload,
    usage_chunk_payload,
    usage_payload,
)

_CHAT_PATH = "/v1/chat/completions"
_MODELS_PATH = "/v1/models"


class SimServer:
    """The simulator. ``await start()``, point a client at ``url``, ``await stop()``."""

    def __init__(self, config: SimConfig | None = None, policy: Policy | None = None) -> None:
        self.config = config or SimConfig()
        self.policy: Policy = policy or EchoPolicy()
        self._plan = FaultPlan(self.config)
        self._records: list[RequestRecord] = []
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[Any]] = set()
        self._port = 0
        self._counter = 0
        self._stopping = False
        self.in_flight = 0
        self.peak_in_flight = 0

    @property
    def port(self) -> int:
        """The bound port (known after ``start``)."""
        return self._port

    @property
    def url(self) -> str:
        """Base URL for OpenAI clients, ending in ``/v1``."""
        if self._server is None:
            raise RuntimeError("SimServer is not started")
        return f"http://{self.config.host}:{self._port}/v1"

    @property
    def requests(self) -> list[RequestRecord]:
        """A copy of the request log, in completion order."""
        return list(self._records)

    async def start(self) -> None:
        """Bind and start accepting connections."""
        if self._server is not None:
            return
        self._stopping = False
        # A deep backlog so a burst of a thousand connects is not dropped by the kernel.
        self._server = await asyncio.start_server(
            self._handle_connection, self.config.host, self.config.port, backlog=4096
        )
        self._port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Stop accepting, cut open connections and wait until they are gone."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping = True
        server.close()
        tasks = list(self._connections)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()

    async def __aenter__(self) -> SimServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _handle_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        try:
            await self._serve_connection(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # The client went away mid-request; nothing to answer.
        except asyncio.CancelledError:
            # Our own shutdown cancels connections; ending quietly keeps asyncio's stream
            # callback from logging the cancellation as an unhandled error.
            if not self._stopping:
                raise
        finally:
            if task is not None:
                self._connections.discard(task)
            writer.close()

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        while True:
            try:
                request = await read_request(reader, self.config.max_body_bytes)
            except HttpParseError as exc:
                payload = error_payload(str(exc), "invalid_request_error")
                await write_json(writer, exc.status, payload, keep_alive=False)
                return
            if request is None:
                return
            keep_alive = await self._dispatch(request, reader, writer)
            if not (keep_alive and request.keep_alive):
                return

    async def _dispatch(
        self, request: HttpRequest, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        keep = request.keep_alive
        if request.path == _CHAT_PATH:
            if request.method != "POST":
                return await self._reply_error(writer, 405, "use POST", keep)
            return await self._chat(request, reader, writer)
        if request.path == _MODELS_PATH:
            if request.method != "GET":
                return await self._reply_error(writer, 405, "use GET", keep)
            await write_json(writer, 200, models_payload(self.config.models), keep_alive=keep)
            return True
        return await self._reply_error(writer, 404, f"no route for {request.path}", keep)

    def _authorized(self, request: HttpRequest) -> bool:
        if self.config.api_key is None:
            return True
        return request.headers.get("authorization") == f"Bearer {self.config.api_key}"

    async def _reply_error(
        self, writer: asyncio.StreamWriter, status: int, message: str, keep_alive: bool
    ) -> bool:
        await write_error(writer, status, message, keep_alive)
        return True

    async def _chat(
        self, request: HttpRequest, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        keep = request.keep_alive
        try:
            chat = parse_chat(request.body)
        except BadRequest as exc:
            return await self._reply_error(writer, 400, str(exc), keep)
        started = time.time()
        clock = time.perf_counter()
        if not self._authorized(request):
            self._log(chat, started, clock, 401, None)
            await write_error(
                writer, 401, "invalid API key", keep, error_type="authentication_error"
            )
            return True
        cap = self.config.max_concurrent
        if cap is not None and self.in_flight >= cap:
            self._log(chat, started, clock, 429, None)
            message = f"simulated concurrency cap of {cap} requests reached"
            await write_rate_limited(writer, message, self.config.retry_after_s, keep)
            return True
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        status: int | None = None
        fault = self.config.model_faults.get(chat.model) or self._plan.next_fault()
        try:
            status = await self._answer(chat, fault, reader, writer, keep)
        finally:
            self.in_flight -= 1
            self._log(chat, started, clock, status, fault)
        return status is not None

    def _log(
        self,
        chat: ChatRequest,
        started: float,
        clock: float,
        status: int | None,
        fault: FaultKind | None,
    ) -> None:
        self._records.append(
            RequestRecord(
                time=started,
                model=chat.model,
                message_count=len(chat.messages),
                prompt_chars=chat.prompt_chars,
                messages=tuple(chat.messages),
                status=status,
                streamed=chat.stream,
                fault=fault,
                duration_s=time.perf_counter() - clock,
                temperature=chat.temperature,
                max_tokens=chat.max_tokens,
            )
        )

    async def _answer(
        self,
        chat: ChatRequest,
        fault: FaultKind | None,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        keep: bool,
    ) -> int | None:
        """Reply to an admitted chat request; the HTTP status, or ``None`` if dropped."""
        if fault in ("malformed", "empty_choices"):
            return await broken_reply(chat, fault, self.config, self._next_id(), writer, keep)
        if fault is not None:
            return await fault_reply(fault, self.config, reader, writer, keep)
        prompt_tokens = tokens_for_chars(chat.prompt_chars)
        window = self.config.context_window_tokens
        if window is not None and prompt_tokens > window:
            return await write_context_length(writer, prompt_tokens, keep)
        try:
            text = await run_policy(self.policy, chat.model, chat.messages)
        except PolicyExhaustedError as exc:
            # Asking again cannot help, so the reply is not a retryable server error.
            await write_error(writer, 400, str(exc), keep, code="script_exhausted")
            return 400
        except Exception as exc:  # A broken policy is a server error, reported to the client.
            message = f"policy failed: {exc}"
            await write_error(writer, 500, message, keep, error_type="server_error")
            return 500
        finish = "stop"
        if chat.max_tokens is not None and estimate_tokens(text) > chat.max_tokens:
            text, finish = text[: chat.max_tokens * 4], "length"
        usage = usage_payload(prompt_tokens, estimate_tokens(text))
        request_id = self._next_id()
        if chat.stream:
            await self._stream_reply(chat, request_id, text, finish, usage, writer, keep)
        else:
            await self._plain_reply(chat, request_id, text, finish, usage, writer, keep)
        return 200

    def _next_id(self) -> str:
        self._counter += 1
        return f"chatcmpl-sim-{self._counter}"

    async def _plain_reply(
        self,
        chat: ChatRequest,
        request_id: str,
        text: str,
        finish: str,
        usage: dict[str, Any],
        writer: asyncio.StreamWriter,
        keep: bool,
    ) -> None:
        delay = self.config.ttft_s + self.config.generation_time_s(estimate_tokens(text))
        if delay > 0:
            await asyncio.sleep(delay)
        payload = completion_payload(request_id, chat.model, text, finish, usage)
        await write_json(writer, 200, payload, keep_alive=keep)

    async def _stream_reply(
        self,
        chat: ChatRequest,
        request_id: str,
        text: str,
        finish: str,
        usage: dict[str, Any],
        writer: asyncio.StreamWriter,
        keep: bool,
    ) -> None:
        sse = SseWriter(writer)
        await sse.start(keep_alive=keep)
        if self.config.ttft_s > 0:
            await asyncio.sleep(self.config.ttft_s)
        await self._stream_text(chat.model, request_id, text, finish, sse)
        if chat.include_usage:
            await sse.send(json.dumps(usage_chunk_payload(request_id, chat.model, usage)))
        await sse.send("[DONE]")
        await sse.finish()

    async def _stream_text(
        self, model: str, request_id: str, text: str, finish: str, sse: SseWriter
    ) -> None:
        await sse.send(json.dumps(chunk_payload(request_id, model, role="assistant", content="")))
        size = self.config.stream_chunk_chars
        for start in range(0, len(text), size):
            piece = text[start : start + size]
            delay = self.config.generation_time_s(estimate_tokens(piece))
            if delay > 0:
                await asyncio.sleep(delay)
            await sse.send(json.dumps(chunk_payload(request_id, model, content=piece)))
        await sse.send(json.dumps(chunk_payload(request_id, model, finish_reason=finish)))
