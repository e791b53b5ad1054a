"""Sessions: a context pinned in the store once, and a memory, shared by many runs.

A session is a store session whose name is a generated id (``ses_`` + 16 hex); the human
name, the pinned context's key, its size and file name are kept in its data. A run asked
in a session uses the session's context key, so resume and replay rebuild that exact
context from the store whatever happened to the upload since.

An upload is written to a file under ``RLM_HOME/uploads`` as it arrives and counted on
the way, so a server never holds a whole context in memory and stops reading the moment
it passes the limit; the file is then pinned (copied into the content-addressed blob
store) and removed.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator, Generator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from rlm_engine.errors import ContextError
from rlm_engine.service.errors import ContextTooLargeError, PathNotAllowedError
from rlm_engine.service.limits import ServiceLimits
from rlm_engine.service.principal import Principal
from rlm_engine.settings import Settings
from rlm_engine.store.errors import SessionNotFoundError
from rlm_engine.store.pinned_context import pin_context
from rlm_engine.store.protocol import Store
from rlm_engine.store.records import MemoryItem, MemoryScope, Session

SESSION_PREFIX = "ses_"
TEXT_FILENAME = "context.txt"
UPLOADS_DIR = "uploads"
# Runs counted per session: enough for any listing, without an unbounded read.
RUNS_COUNTED = 10_000


def new_session_id() -> str:
    return SESSION_PREFIX + secrets.token_hex(8)


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """A session as the service shows it. Sessions opened by ``rlm ask --session NAME``
    have no pinned context: their id is their name and `context_key` is None."""

    id: str
    name: str
    context_key: str | None
    context_bytes: int
    created_at: float
    runs: int
    """How many runs were asked in the session."""
    filename: str | None = None


def safe_filename(filename: str | None) -> str:
    """The file name an upload is kept under: its last path component only (a client's
    "../../x" must not name a place on the server), ``context.txt`` when there is none."""
    name = Path((filename or "").replace("\\", "/")).name.strip()
    if name in ("", ".", ".."):
        return TEXT_FILENAME
    return name


def _too_large(max_bytes: int) -> ContextTooLargeError:
    return ContextTooLargeError(
        f"the context is larger than the limit of {max_bytes} bytes", max_bytes=max_bytes
    )


def _tree_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


class SessionService:
    """Create, list, read and delete a tenant's sessions and their memory.

    Every method takes the caller's `Principal`: another tenant's session answers
    `SessionNotFoundError`, exactly as a session that does not exist. Methods other than
    `create_stream` are synchronous like the store (async callers use `asyncio.to_thread`).
    """

    def __init__(self, store: Store, settings: Settings, limits: ServiceLimits) -> None:
        self._store = store
        self._settings = settings
        self._limits = limits

    @property
    def uploads(self) -> Path:
        return self._settings.home / UPLOADS_DIR

    # -- creating ------------------------------------------------------------------------

    @contextmanager
    def _upload_file(self, filename: str | None) -> Generator[tuple[Path, IO[bytes]]]:
        """A new file named ``filename`` in a private directory under the uploads; the
        directory is removed afterwards, whatever happened."""
        self.uploads.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix="upload-", dir=self.uploads))
        try:
            path = folder / safe_filename(filename)
            with path.open("xb") as out:
                yield path, out
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def create_text(self, who: Principal, name: str, text: str) -> SessionInfo:
        """A session whose context is ``text`` (kept as UTF-8)."""
        data = text.encode("utf-8")
        max_bytes = self._limits.max_context_bytes
        if len(data) > max_bytes:
            raise _too_large(max_bytes)
        with self._upload_file(TEXT_FILENAME) as (path, out):
            out.write(data)
            out.close()
            return self._pin(who, name, [path], filename=TEXT_FILENAME)

    async def create_stream(
        self,
        who: Principal,
        name: str,
        chunks: AsyncIterator[bytes],
        *,
        filename: str | None,
        max_bytes: int | None = None,
    ) -> SessionInfo:
        """A session whose context is the bytes of ``chunks``, written to disk as they
        arrive; `ContextTooLargeError` as soon as they pass ``max_bytes`` (default: the
        limit), with nothing kept."""
        limit = self._limits.max_context_bytes if max_bytes is None else max_bytes
        kept = safe_filename(filename)
        with self._upload_file(kept) as (path, out):
            size = 0
            async for chunk in chunks:
                size += len(chunk)
                if size > limit:
                    raise _too_large(limit)
                # Disk writes go to a thread: a slow disk must not stall the other
                # requests this event loop serves.
                await asyncio.to_thread(out.write, chunk)
            await asyncio.to_thread(out.close)
            return await asyncio.to_thread(self._pin, who, name, [path], filename=kept)

    def create_path(self, who: Principal, name: str, path: str | Path) -> SessionInfo:
        """A session whose context is a file or directory on the server, under one of
        the allowed roots (`RLM_ALLOWED_PATHS`); else `PathNotAllowedError`."""
        resolved = self._allowed(Path(path))
        if not resolved.exists():
            raise ContextError(f"context path {str(path)!r} does not exist")
        if resolved.is_dir():
            for file in resolved.rglob("*"):
                # A symlink inside an allowed directory may point anywhere.
                if file.is_file():
                    self._allowed(file)
        max_bytes = self._limits.max_context_bytes
        if _tree_bytes(resolved) > max_bytes:
            raise _too_large(max_bytes)
        filename = resolved.name if resolved.is_file() else None
        return self._pin(who, name, [resolved], filename=filename)

    def _allowed(self, path: Path) -> Path:
        """``path`` with symlinks resolved, if it lies under an allowed root."""
        roots = self._settings.allowed_paths
        if not roots:
            raise PathNotAllowedError(
                "this server reads no context from its own paths",
                hint="the operator can allow directories with RLM_ALLOWED_PATHS "
                f"(separated by {os.pathsep!r}); otherwise upload the file",
            )
        resolved = path.expanduser().resolve()
        for root in roots:
            if resolved.is_relative_to(root.expanduser().resolve()):
                return resolved
        raise PathNotAllowedError(
            f"{str(path)!r} is not under a directory this server allows",
            hint="use a path under RLM_ALLOWED_PATHS, or upload the file",
        )

    def _pin(
        self, who: Principal, name: str, paths: list[Path], *, filename: str | None
    ) -> SessionInfo:
        record = pin_context(self._store, paths)
        assert record is not None  # one path given: there is a context
        data: dict[str, Any] = {
            "name": name,
            "context_key": record.content_hash,
            "context_bytes": record.size,
            "filename": filename,
        }
        session = self._store.open_session(new_session_id(), data, tenant=who.tenant)
        return self._info(who, session)

    # -- reading -------------------------------------------------------------------------

    def _owned(self, who: Principal, session_id: str) -> Session:
        session = self._store.get_session(session_id)
        if session is None or session.tenant != who.tenant:
            raise SessionNotFoundError(session_id)
        return session

    def _info(self, who: Principal, session: Session) -> SessionInfo:
        data = session.data
        runs = self._store.list_runs(RUNS_COUNTED, session=session.name, tenant=who.tenant)
        key = data.get("context_key")
        filename = data.get("filename")
        return SessionInfo(
            id=session.name,
            name=str(data.get("name") or session.name),
            context_key=key if isinstance(key, str) else None,
            context_bytes=int(data.get("context_bytes") or 0),
            created_at=session.created_at,
            runs=len(runs),
            filename=filename if isinstance(filename, str) else None,
        )

    def get(self, who: Principal, session_id: str) -> SessionInfo:
        return self._info(who, self._owned(who, session_id))

    def delete(self, who: Principal, session_id: str) -> None:
        """Delete the session and its memory; its runs remain, detached."""
        self._owned(who, session_id)
        if not self._store.delete_session(session_id):
            raise SessionNotFoundError(session_id)

    # -- memory --------------------------------------------------------------------------

    def _scope(self, who: Principal, session_id: str) -> MemoryScope:
        self._owned(who, session_id)
        return MemoryScope.session(session_id)

    def memory_list(self, who: Principal, session_id: str) -> list[MemoryItem]:
        return self._store.memory_list(self._scope(who, session_id))

    def memory_get(self, who: Principal, session_id: str, key: str) -> MemoryItem | None:
        return self._store.memory_get(self._scope(who, session_id), key)

    def memory_set(self, who: Principal, session_id: str, key: str, value: Any) -> MemoryItem:
        return self._store.memory_set(self._scope(who, session_id), key, value)

    def memory_delete(self, who: Principal, session_id: str, key: str) -> bool:
        return self._store.memory_delete(self._scope(who, session_id), key)

    # Last in the class: a method named `list` would shadow the builtin in annotations
    # below it.
    def list(self, who: Principal, *, limit: int = 100) -> list[SessionInfo]:
        """The tenant's sessions, most recently used first."""
        sessions = self._store.list_sessions(limit, tenant=who.tenant)
        return [self._info(who, s) for s in sessions]
