"""A run's context pinned in the store, so resume and replay never depend on the user's files.

`pin_context` copies the files into the blob store (content-addressed: a context many runs
share is kept once) under a manifest, and registers the manifest as the run's context.
`restore_context` gives the paths back: the originals while they are unchanged (same size
and modification time as when pinned), otherwise copies rebuilt from the blobs.

`BackgroundPin` does the same off a run's critical path: it notes each file's size and
modification time when the run starts (cheap), names the context by a key derived from
them and the run id, and copies the files in a thread while the run proceeds. A file that
changes between the run's start and the end of its copy fails the pin
(`ContextChangedError`): the pinned bytes would not be the bytes the run saw. The record's
``meta["content_hash"]`` holds the content identity `pin_context` would have used.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from rlm_engine.errors import ContextError
from rlm_engine.store.blobs import sha256_bytes
from rlm_engine.store.errors import BlobNotFoundError, StoreError
from rlm_engine.store.protocol import Store
from rlm_engine.store.records import ContextRecord

MANIFEST_KIND = "pinned-paths"


class ContextChangedError(ContextError):
    """A context file changed after the run started, before its copy was complete."""


class PinCancelledError(StoreError):
    """The pin was stopped (its run ended first)."""


@dataclass(frozen=True, slots=True)
class SeenFile:
    """A context file as it was when the run started."""

    name: str
    """Relative to the given path's parent."""
    path: Path
    size: int
    mtime_ns: int


@dataclass(frozen=True, slots=True)
class SeenSource:
    """A path given as context: a file, or a directory with its files."""

    source: Path
    is_dir: bool
    files: tuple[SeenFile, ...]


def _files_of(source: Path) -> list[tuple[str, Path]]:
    """(name relative to the source's parent, path) for a file, or each file in a directory."""
    if source.is_file():
        return [(source.name, source)]
    if (source / "_delta_log").is_dir():  # its current version only, not its history
        from rlm_engine.integrations.table_context import delta_pin_files

        return [(str(p.relative_to(source.parent)), p) for p in delta_pin_files(source)]
    found = sorted(p for p in source.rglob("*") if p.is_file())
    return [(str(p.relative_to(source.parent)), p) for p in found]


def look(paths: Sequence[str | Path]) -> list[SeenSource]:
    """The context at ``paths`` as it is now: names, sizes and modification times (no
    file is read)."""
    seen: list[SeenSource] = []
    for raw in paths:
        source = Path(raw)
        files: list[SeenFile] = []
        for name, path in _files_of(source):
            stat = path.stat()
            files.append(SeenFile(name, path, stat.st_size, stat.st_mtime_ns))
        seen.append(SeenSource(source, source.is_dir(), tuple(files)))
    return seen


def _store_files(
    store: Store, seen: Sequence[SeenSource], stopped: Callable[[], bool] = lambda: False
) -> list[dict[str, Any]]:
    """The manifest entries of ``seen``, each file's bytes put in the blob store; fails if
    a file is not what ``seen`` says any more."""
    entries: list[dict[str, Any]] = []
    for src in seen:
        files: list[dict[str, Any]] = []
        for f in src.files:
            if stopped():
                raise PinCancelledError(f"pinning {src.source} was stopped")
            try:
                ref = store.blobs.put_file(f.path)
            except FileNotFoundError:
                ref = ""  # removed since the run started: reported just below
            _check_unchanged(f)
            files.append({"name": f.name, "ref": ref, "size": f.size, "mtime_ns": f.mtime_ns})
        entries.append({"source": str(src.source), "is_dir": src.is_dir, "files": files})
    return entries


def _check_unchanged(f: SeenFile) -> None:
    # A write changes the modification time: unchanged size and time after the copy mean
    # the copied bytes are the ones the file held when the run started.
    try:
        stat = f.path.stat()
        now: tuple[int, int] | None = (stat.st_size, stat.st_mtime_ns)
    except FileNotFoundError:
        now = None
    if now != (f.size, f.mtime_ns):
        state = "was removed" if now is None else "changed"
        raise ContextChangedError(
            f"context file {str(f.path)!r} {state} while the run was pinning it, so the "
            "run's context cannot be kept exactly; run again once the file stays as it is"
        )


def _register(store: Store, entries: list[dict[str, Any]], key: str | None) -> ContextRecord:
    # The identity is the content and names only: the same files pinned from elsewhere, or
    # touched without changes, are the same context.
    identity = [[e["is_dir"], [[f["name"], f["ref"]] for f in e["files"]]] for e in entries]
    content_hash = sha256_bytes(json.dumps(identity).encode())
    manifest_ref = store.blobs.put(json.dumps({"entries": entries}).encode())
    meta: dict[str, Any] = {"files": sum(len(e["files"]) for e in entries)}
    if key is not None:
        meta["content_hash"] = content_hash
    record = ContextRecord(
        content_hash=key or content_hash,
        size=sum(f["size"] for e in entries for f in e["files"]),
        kind=MANIFEST_KIND,
        path=entries[0]["source"] if len(entries) == 1 else None,
        blob_ref=manifest_ref,
        meta=meta,
    )
    return store.register_context(record)


def pin_context(store: Store, paths: Sequence[str | Path]) -> ContextRecord | None:
    """Copy the context at ``paths`` (files or directories) into the store and register it;
    None when there is no context. Reads each file twice (hash, then copy) and never holds
    one in memory."""
    if not paths:
        return None
    return _register(store, _store_files(store, look(paths)), None)


def pin_key(run_id: str, seen: Sequence[SeenSource]) -> str:
    """The key a run's context is registered under when pinned in the background: known
    when the run starts, before any file is read."""
    described = [
        [str(s.source), s.is_dir, [[f.name, f.size, f.mtime_ns] for f in s.files]] for s in seen
    ]
    return sha256_bytes(json.dumps({"run": run_id, "context": described}).encode())


class BackgroundPin:
    """Pins a run's context in a thread: `key` is known at once, the record when done.

    `wait` (async) or `result` give the registered record, or raise what failed
    (`ContextChangedError` if a file changed); `stop` abandons the pin between files."""

    def __init__(self, store: Store, run_id: str, paths: Sequence[str | Path]) -> None:
        self.run_id = run_id
        self.seen = look(paths)
        self.key = pin_key(run_id, self.seen)
        self._store = store
        self._future: Future[ContextRecord] = Future()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._work, name="rlm-context-pin", daemon=True)

    def start(self) -> BackgroundPin:
        self._thread.start()
        return self

    def _work(self) -> None:
        self._future.set_running_or_notify_cancel()
        try:
            entries = _store_files(self._store, self.seen, self._stopped.is_set)
            record = _register(self._store, entries, self.key)
        except BaseException as exc:
            self._future.set_exception(exc)
        else:
            self._future.set_result(record)

    def done(self) -> bool:
        return self._future.done()

    def result(self, timeout: float | None = None) -> ContextRecord:
        return self._future.result(timeout)

    async def wait(self) -> ContextRecord:
        return await asyncio.wrap_future(self._future)

    def stop(self) -> None:
        self._stopped.set()


def unchanged(entry: dict[str, Any]) -> bool:
    """Whether a pinned path still holds what was pinned (same names, sizes, mtimes)."""
    source = Path(entry["source"])
    if not source.exists() or source.is_dir() != entry["is_dir"]:
        return False
    current = _files_of(source)
    if [name for name, _ in current] != [f["name"] for f in entry["files"]]:
        return False
    for (_, path), pinned in zip(current, entry["files"], strict=True):
        stat = path.stat()
        if (stat.st_size, stat.st_mtime_ns) != (pinned["size"], pinned["mtime_ns"]):
            return False
    return True


def _rebuild(store: Store, entry: dict[str, Any], dest: Path) -> Path:
    for pinned in entry["files"]:
        target = dest / pinned["name"]
        target.parent.mkdir(parents=True, exist_ok=True)
        with store.blobs.open(pinned["ref"]) as src, target.open("wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
    source = Path(entry["source"])
    if entry["is_dir"]:
        rebuilt = dest / source.name
        rebuilt.mkdir(parents=True, exist_ok=True)  # a pinned directory may have been empty
        return rebuilt
    return dest / source.name


def pinned_entries(store: Store, content_hash: str) -> list[dict[str, Any]] | None:
    """The manifest of a pinned context: per path given, ``source``, ``is_dir`` and its
    ``files`` (``name``, ``ref``, ``size``, ``mtime_ns``); None if it was not pinned."""
    record = store.get_context(content_hash)
    if record is None or record.kind != MANIFEST_KIND or record.blob_ref is None:
        return None
    try:
        manifest = json.loads(store.blobs.get(record.blob_ref))
    except BlobNotFoundError as exc:
        raise StoreError(f"the pinned copy of context {content_hash} is gone: {exc}") from exc
    return cast(list[dict[str, Any]], manifest["entries"])


def restore_context(store: Store, content_hash: str, scratch: Path) -> list[Path]:
    """The pinned context's paths, in the order pinned: each original while unchanged,
    else a copy rebuilt under ``scratch`` (a directory the caller removes afterwards)."""
    entries = pinned_entries(store, content_hash)
    if entries is None:
        raise StoreError(f"context {content_hash} is not pinned in this store")
    return [
        Path(entry["source"]) if unchanged(entry) else _rebuild(store, entry, scratch / str(i))
        for i, entry in enumerate(entries)
    ]
