"""The host-call relay between an executor process and the orchestrator.

A cell run by ``rlm-executor`` calls ``llm_query``, ``rlm_query``, memory and tools like
any cell; those calls must reach the orchestrator's handler, so that the run's journal,
budgets, caps, events and child RLMs stay in the one run, and a resumed run answers
recorded sub-calls from its journal instead of paying for them again.

``RelayServer`` is an asyncio Unix-socket server in the orchestrator: a socket in a
private (0700) directory under a short path (AF_UNIX paths are limited to 107 bytes), and
one random token per artifact, which names the handler that serves its calls. The
executor's handler is a ``RelayClient``: one connection per call, so calls run
concurrently, each a request frame and a reply frame (``sandbox.wire``: 4-byte length,
JSON). An error the handler raises comes back with its type name and is raised again in
the executor, where the worker turns it into the cell's RuntimeError exactly as the local
sandbox does. The token travels to the executor on its stdin, never on its command line.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

from rlm_engine.errors import RLMError
from rlm_engine.sandbox import wire
from rlm_engine.sandbox.base import HostHandler

log = logging.getLogger("rlm_engine.jobs")

MAX_PATH_BYTES = 107
"""The longest AF_UNIX socket path Linux accepts (the 108-byte field with its NUL)."""
CONNECT_TIMEOUT_S = 10.0


class RelayError(RLMError):
    """The relay could not carry a host call (refused, closed, or a broken frame)."""


class RemoteError(Exception):
    """An error the orchestrator's handler raised, raised again in the executor under a
    subclass named like the original (see ``remote_error``)."""


_REMOTE_TYPES: dict[str, type[RemoteError]] = {}


def remote_error(type_name: str, message: str) -> Exception:
    """The exception to raise for a handler's ``type_name: message``: a ``KeyError`` for
    a ``KeyError`` (a missing memory key), else a ``RemoteError`` subclass of that name,
    so the cell reads the same message as under the local sandbox."""
    if type_name == "KeyError":
        return KeyError(message)
    name = type_name if type_name.isidentifier() else "RemoteError"
    made = _REMOTE_TYPES.get(name)
    if made is None:
        made = cast(type[RemoteError], type(name, (RemoteError,), {}))
        _REMOTE_TYPES[name] = made
    return made(message)


async def read_frame(reader: asyncio.StreamReader) -> dict[str, Any] | None:
    """One frame from ``reader``; None at a clean end of stream."""
    try:
        header = await reader.readexactly(wire.HEADER_BYTES)
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise RelayError("the relay connection ended inside a frame header") from None
    size = int.from_bytes(header, "big")
    if size > wire.MAX_FRAME_BYTES:
        raise RelayError(f"a relay frame of {size} bytes exceeds the {wire.MAX_FRAME_BYTES} limit")
    try:
        payload = await reader.readexactly(size)
        value = json.loads(payload.decode("utf-8"))
    except (asyncio.IncompleteReadError, UnicodeDecodeError, ValueError) as exc:
        raise RelayError(f"a broken relay frame: {exc}") from None
    if not isinstance(value, dict):
        raise RelayError("a relay frame must hold a JSON object")
    return cast(dict[str, Any], value)


_PREFIX = "rlm-relay-"
_OWNED = re.compile(rf"^{_PREFIX}(?P<pid>\d+)-")


def _socket_dir(parent: Path | None) -> Path:
    """A fresh 0700 directory whose socket path fits AF_UNIX: under ``parent`` when that
    is short enough, else under the system's temporary directory, else ``/tmp``. Its
    name carries this process's id, so directories of killed processes can be removed."""
    for base in (parent, Path(tempfile.gettempdir()), Path("/tmp")):
        if base is None:
            continue
        # mkdtemp adds about 30 characters with the pid; the socket's own name adds 5.
        if len(os.fsencode(str(base))) + 48 > MAX_PATH_BYTES:
            continue
        base.mkdir(parents=True, exist_ok=True)
        _remove_stale(base)
        prefix = f"{_PREFIX}{os.getpid()}-"
        return Path(tempfile.mkdtemp(prefix=prefix, dir=base))  # mkdtemp is 0700
    raise RelayError("no directory with a short enough path for the relay socket")


def _remove_stale(base: Path) -> None:
    """Remove relay directories of this user whose process is gone (a killed
    orchestrator cannot remove its own)."""
    try:
        entries = list(os.scandir(base))
    except OSError:
        return
    for entry in entries:
        match = _OWNED.match(entry.name)
        if match is None:
            continue
        try:
            if entry.stat(follow_symlinks=False).st_uid != os.getuid():
                continue
            os.kill(int(match["pid"]), 0)
        except ProcessLookupError:
            shutil.rmtree(entry.path, ignore_errors=True)
        except OSError:
            continue


class RelayServer:
    """Serves host calls from executors; each token names the handler of one artifact."""

    def __init__(self, *, parent: Path | None = None) -> None:
        self._parent = parent
        self._dir: Path | None = None
        self._server: asyncio.Server | None = None
        self._handlers: dict[str, HostHandler] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def path(self) -> Path:
        if self._dir is None:
            raise RelayError("the relay is not started")
        return self._dir / "sock"

    @property
    def running(self) -> bool:
        return self._server is not None

    async def start(self) -> None:
        if self._server is not None:
            return
        self._dir = _socket_dir(self._parent)
        self._server = await asyncio.start_unix_server(self._serve, path=str(self.path))
        os.chmod(self.path, 0o600)

    def open(self, handler: HostHandler) -> str:
        """A new token whose calls ``handler`` serves (until ``revoke``)."""
        token = secrets.token_urlsafe(32)
        self._handlers[token] = handler
        return token

    def revoke(self, token: str) -> None:
        self._handlers.pop(token, None)

    def _handler_for(self, token: object) -> HostHandler | None:
        if not isinstance(token, str):
            return None
        for known, handler in self._handlers.items():
            if hmac.compare_digest(known.encode(), token.encode()):
                return handler
        return None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            request = await read_frame(reader)
            if request is None:
                return
            reply = await self._answer(request)
            writer.write(_encode_reply(reply))
            await writer.drain()
        except (RelayError, ConnectionError) as exc:
            log.warning("a relay connection failed: %s", exc)
        finally:
            if task is not None:
                self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _answer(self, request: Mapping[str, Any]) -> dict[str, Any]:
        handler = self._handler_for(request.get("token"))
        if handler is None:
            return {"ok": False, "type": "RelayError", "message": "the relay refused the call"}
        method, params = request.get("method"), request.get("params")
        if not isinstance(method, str) or not isinstance(params, dict):
            return {"ok": False, "type": "RelayError", "message": "a malformed relay request"}
        try:
            value = await handler(method, cast(dict[str, Any], params))
        except KeyError as exc:
            key = exc.args[0] if exc.args else ""
            return {"ok": False, "type": "KeyError", "message": str(key)}
        except Exception as exc:  # reported to the cell, as the local sandbox does
            return {"ok": False, "type": type(exc).__name__, "message": str(exc)}
        return {"ok": True, "value": value}

    async def close(self) -> None:
        """Stop serving, end calls in flight, remove the socket's directory. Idempotent."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._handlers.clear()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None


def _encode_reply(reply: dict[str, Any]) -> bytes:
    try:
        return wire.encode(reply)
    except (TypeError, ValueError, wire.WireError) as exc:
        return wire.encode(
            {"ok": False, "type": "RelayError", "message": f"the answer cannot be sent: {exc}"}
        )


class RelayClient:
    """The executor's ``HostHandler``: forwards each call to the orchestrator's relay."""

    def __init__(self, path: str | os.PathLike[str], token: str) -> None:
        self._path = os.fspath(path)
        self._token = token

    async def __call__(self, method: str, params: Mapping[str, Any]) -> Any:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_unix_connection(self._path), CONNECT_TIMEOUT_S
            )
        except (OSError, TimeoutError) as exc:
            raise RelayError(
                f"the orchestrator's relay at {self._path} cannot be reached ({exc}); "
                "host calls need the orchestrator that started this executor"
            ) from None
        try:
            request = {"token": self._token, "method": method, "params": dict(params)}
            writer.write(wire.encode(request))
            await writer.drain()
            reply = await read_frame(reader)
        except ConnectionError as exc:
            raise RelayError(f"the relay connection broke: {exc}") from None
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
        if reply is None:
            raise RelayError("the relay closed the connection without an answer")
        if reply.get("ok") is True:
            return reply.get("value")
        raise remote_error(str(reply.get("type") or "RemoteError"), str(reply.get("message")))


async def no_relay(method: str, params: Mapping[str, Any]) -> Any:
    """The handler of an executor started without ``--relay``: host calls fail clearly."""
    raise RelayError(
        f"{method} needs the orchestrator: this executor was started without --relay",
    )
