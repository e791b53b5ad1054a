"""A run's context pinned in the store, so resume and replay never depend on the user's files.

`pin_context` copies the files into the blob store (content-addressed: a context many runs
share is kept once) under a manifest, and registers the manifest as the run's context.
`restore_context` gives the paths back: the originals while they are unchanged (same size
and modification time as when pinned), otherwise copies rebuilt from the blobs.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from rlm_engine.store.blobs import sha256_bytes
from rlm_engine.store.errors import BlobNotFoundError, StoreError
from rlm_engine.store.protocol import Store
from rlm_engine.store.records import ContextRecord

MANIFEST_KIND = "pinned-paths"


def _files_of(source: Path) -> list[tuple[str, Path]]:
    """(name relative to the source's parent, path) for a file, or each file in a directory."""
    if source.is_file():
        return [(source.name, source)]
    found = sorted(p for p in source.rglob("*") if p.is_file())
    return [(str(p.relative_to(source.parent)), p) for p in found]


def _entry(store: Store, source: Path) -> dict[str, Any]:
    files: list[dict[str, Any]] = []
    for name, path in _files_of(source):
        stat = path.stat()
        files.append(
            {
                "name": name,
                "ref": store.blobs.put_file(path),
                "size": stat.st_size,
                "mtime_ns": stat.st_mtime_ns,
            }
        )
    return {"source": str(source), "is_dir": source.is_dir(), "files": files}


def pin_context(store: Store, paths: Sequence[str | Path]) -> ContextRecord | None:
    """Copy the context at ``paths`` (files or directories) into the store and register it;
    None when there is no context. Reads each file twice (hash, then copy) and never holds
    one in memory."""
    if not paths:
        return None
    entries = [_entry(store, Path(p)) for p in paths]
    # The identity is the content and names only: the same files pinned from elsewhere, or
    # touched without changes, are the same context.
    identity = [[e["is_dir"], [[f["name"], f["ref"]] for f in e["files"]]] for e in entries]
    content_hash = sha256_bytes(json.dumps(identity).encode())
    manifest_ref = store.blobs.put(json.dumps({"entries": entries}).encode())
    record = ContextRecord(
        content_hash=content_hash,
        size=sum(f["size"] for e in entries for f in e["files"]),
        kind=MANIFEST_KIND,
        path=str(paths[0]) if len(paths) == 1 else None,
        blob_ref=manifest_ref,
        meta={"files": sum(len(e["files"]) for e in entries)},
    )
    return store.register_context(record)


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
