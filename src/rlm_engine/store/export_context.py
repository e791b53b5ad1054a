"""The `context` line of an exported notebook: rebuilt from what the run recorded.

`rlm ask` stores the absolute context paths in the run's settings (`"context"`) and pins
the files in the blob store, so a notebook of a run whose files changed or went away still
loads what the run saw; a run started from the library may instead have registered its
context by content hash, with the body in the blob store. The notebook loads the value the
way the REPL did (a text file as `str`, a `.json` file as its value, several files as a
list of texts, a directory as a `Corpus`), embedding small values and referring to large
ones by path.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

from rlm_engine.store.blobs import LocalBlobStore
from rlm_engine.store.pinned_context import MANIFEST_KIND, pinned_entries, unchanged
from rlm_engine.store.protocol import Store
from rlm_engine.store.records import Run

INLINE_LIMIT = 200_000
"""Contexts up to this many characters are embedded in the notebook; larger ones are read
from their recorded path when the notebook runs."""

_NO_CONTEXT = "context = None  # the run had no context"
_LOST_CONTEXT = (
    "context = None  # the run's context was not recorded; assign it here to re-run the cells"
)


def _settings_paths(run: Run) -> list[str]:
    raw: object = run.settings.get("context")
    if isinstance(raw, str):
        return [raw]
    if isinstance(raw, list):
        return [str(p) for p in cast(list[object], raw)]
    return []


def _text_literal(text: str) -> str:
    return f"context = {text!r}"


def _path_lines(paths: list[str]) -> list[str]:
    """Lines that load `paths` the way the sandbox stages them."""
    if len(paths) > 1:
        return [f"context = [_read_text(path) for path in {paths!r}]"]
    path = Path(paths[0])
    if path.is_dir():
        return [
            "try:  # the REPL's read-only view of a directory, from the rlm-engine package",
            "    from rlm_engine.sandbox.corpus import Corpus",
            "except ImportError:  # pragma: no cover - needs rlm-engine in the kernel",
            "    Corpus = None",
            f"context = Corpus({str(path)!r}) if Corpus is not None else None",
        ]
    size = path.stat().st_size if path.is_file() else INLINE_LIMIT + 1
    if size <= INLINE_LIMIT:
        # Small enough to embed: the notebook then runs anywhere, not only on this host.
        # Bytes, not read_text: the REPL keeps line endings as they are (newline="").
        text = path.read_bytes().decode("utf-8", errors="replace")
        if path.suffix.lower() == ".json":
            return [f"context = json.loads({text!r})"]
        return [_text_literal(text)]
    if path.suffix.lower() == ".json":
        return [f"context = json.loads(_read_text({str(path)!r}))"]
    return [f"context = _read_text({str(path)!r})"]


def _registered_lines(store: Store, run: Run) -> list[str] | None:
    """Lines for a context registered by hash, or None if the store has no usable copy."""
    if run.context_hash is None:
        return None
    record = store.get_context(run.context_hash)
    if record is None or record.kind == MANIFEST_KIND:
        return None
    if record.path is not None and Path(record.path).exists():
        return _path_lines([record.path])
    if record.blob_ref is None or not store.blobs.exists(record.blob_ref):
        return None
    if record.size <= INLINE_LIMIT:
        text = store.blobs.get(record.blob_ref).decode("utf-8", errors="replace")
        if record.kind in ("json", "list", "dict"):
            return [f"context = json.loads({text!r})"]
        return [_text_literal(text)]
    blobs = store.blobs
    if isinstance(blobs, LocalBlobStore):
        return [f"context = _read_text({str(blobs.path(record.blob_ref))!r})"]
    return None


def _blob_expression(store: Store, ref: str, size: int, as_json: bool) -> str | None:
    """An expression loading one pinned file (embedded when small)."""
    if size <= INLINE_LIMIT:
        text = store.blobs.get(ref).decode("utf-8", errors="replace")
        return f"json.loads({text!r})" if as_json else repr(text)
    if not isinstance(store.blobs, LocalBlobStore):
        return None
    read = f"_read_text({str(store.blobs.path(ref))!r})"
    return f"json.loads({read})" if as_json else read


def _pinned_lines(store: Store, run: Run) -> list[str] | None:
    """Lines for a context `rlm ask` pinned: the original paths while unchanged, else the
    pinned copies (files only; a changed directory cannot be rebuilt in a notebook)."""
    entries = None if run.context_hash is None else pinned_entries(store, run.context_hash)
    if entries is None:
        return None
    if all(unchanged(e) for e in entries):
        return _path_lines([e["source"] for e in entries])
    if any(e["is_dir"] for e in entries):
        return None
    files = [f for e in entries for f in e["files"]]
    # One .json file reaches the REPL as its value; several files as a list of texts.
    as_json = len(files) == 1 and str(files[0]["name"]).lower().endswith(".json")
    found = [_blob_expression(store, f["ref"], f["size"], as_json) for f in files]
    if any(expr is None for expr in found):
        return None
    if len(found) == 1:
        return [f"context = {found[0]}"]
    return ["context = [", *(f"    {expr}," for expr in found), "]"]


def context_lines(store: Store, run: Run) -> list[str]:
    """Python lines that define `context` in the notebook's first cell."""
    pinned = _pinned_lines(store, run)
    if pinned is not None:
        return pinned
    paths = _settings_paths(run)
    if paths:
        missing = [p for p in paths if not Path(p).exists()]
        if missing:
            return [f"context = None  # the run's context {missing[0]!r} is gone; restore it"]
        return _path_lines(paths)
    registered = _registered_lines(store, run)
    if registered is not None:
        return registered
    return [_LOST_CONTEXT if run.context_hash is not None else _NO_CONTEXT]
