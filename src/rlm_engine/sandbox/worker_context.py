"""Worker side of context loading: turn a staged spec into the ``context`` value and its
metadata (stdlib only).

The host sends file paths, never bodies, so a 50 MB context is one file read here instead
of a slow trip through the pipe. The metadata carries shape and a short preview only.
"""

from __future__ import annotations

import json
from typing import Any, cast

from rlm_engine.sandbox.corpus import Corpus
from rlm_engine.sandbox.large_text import LargeText

PREVIEW_CHARS = 200
MAX_CHUNK_LENGTHS = 100


class ContextLoadError(Exception):
    """The staged context could not be read; the message names the file."""


def _read_text(path: str, encoding: str = "utf-8") -> str:
    try:
        with open(path, encoding=encoding, errors="replace", newline="") as handle:
            return handle.read()
    except OSError as exc:
        raise ContextLoadError(f"cannot read context file {path!r}: {exc.strerror}") from None


def _meta(
    kind: str,
    total_chars: int,
    *,
    chunk_lengths: list[int] | None = None,
    chunk_count: int | None = None,
    preview: str = "",
    files: int = 0,
    **extra: Any,
) -> dict[str, Any]:
    if chunk_count is not None:
        extra["chunks"] = chunk_count
    return {
        "type": kind,
        "total_chars": total_chars,
        "chunk_lengths": (chunk_lengths or [])[:MAX_CHUNK_LENGTHS],
        "preview": preview[:PREVIEW_CHARS],
        "files": files,
        "extra": extra,
    }


def _list_preview(items: list[str]) -> str:
    parts: list[str] = []
    used = 1
    for item in items:
        part = repr(item[:80])
        parts.append(part)
        used += len(part) + 2
        if used >= PREVIEW_CHARS:
            break
    return ("[" + ", ".join(parts) + (", ...]" if len(parts) < len(items) else "]"))[:PREVIEW_CHARS]


def _element_length(item: Any) -> int:
    if isinstance(item, str):
        return len(item)
    return len(json.dumps(item, ensure_ascii=False))


def _encoding(spec: dict[str, Any]) -> str:
    return str(spec.get("encoding") or "utf-8")


def _load_bytes(spec: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    path = str(spec["path"])
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise ContextLoadError(f"cannot read context file {path!r}: {exc.strerror}") from None
    return data, _meta(
        "bytes", len(data), preview=repr(data[:PREVIEW_CHARS]), files=1, size_unit="bytes"
    )


def _load_json(spec: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    path = str(spec["path"])
    raw = _read_text(path, _encoding(spec))
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise ContextLoadError(f"context file {path!r} is not valid JSON: {exc}") from None
    files = int(spec.get("files", 0))
    if isinstance(value, list):
        items = cast(list[Any], value)
        lengths = [_element_length(item) for item in items[:MAX_CHUNK_LENGTHS]]
        if all(isinstance(item, str) for item in items):
            total = sum(len(item) for item in items)
            return items, _meta(
                "list",
                total,
                chunk_lengths=lengths,
                chunk_count=len(items),
                preview=_list_preview(items),
                files=files,
            )
        return items, _meta(
            "list",
            len(raw),
            chunk_lengths=lengths,
            chunk_count=len(items),
            preview=raw,
            files=files,
        )
    if isinstance(value, dict):
        mapping = cast(dict[str, Any], value)
        return mapping, _meta("dict", len(raw), preview=raw, files=files, keys=len(mapping))
    return value, _meta(type(value).__name__, len(raw), preview=raw, files=files)


def _load_texts(spec: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    encodings: list[str | None] = list(spec.get("encodings") or [None] * len(spec["paths"]))
    texts: list[Any] = []
    for path, encoding in zip(spec["paths"], encodings, strict=True):
        if encoding == "bytes":
            texts.append(_load_bytes({"path": path})[0])
        else:
            texts.append(_read_text(str(path), encoding or "utf-8"))
    return texts, _meta(
        "list",
        sum(len(text) for text in texts),
        chunk_lengths=[len(text) for text in texts],
        chunk_count=len(texts),
        preview=_list_preview(texts),
        files=int(spec.get("files", 0)),
    )


def _load_corpus(spec: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    corpus = Corpus(str(spec["root"]), encoding=_encoding(spec))
    paths = corpus.files()
    sizes = [corpus.size(path) for path in paths[:MAX_CHUNK_LENGTHS]]
    return corpus, _meta(
        "Corpus",
        corpus.total_bytes,
        chunk_lengths=sizes,
        chunk_count=len(paths),
        preview="\n".join(paths),
        files=len(paths),
        size_unit="bytes",
    )


def load_context(spec: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """Load the value a staged ``spec`` describes; return it with its metadata.

    Spec kinds: ``none``; ``text`` (one file -> ``str``); ``bytes`` (one file ->
    ``bytes``); ``json`` (a JSON file -> its value); ``texts`` (several files -> a list of
    ``str``, or ``bytes`` where ``encodings`` says so); ``corpus`` (a directory);
    ``table`` (tables DuckDB reads: ``worker_table``). Text is
    decoded as the spec's ``encoding`` (UTF-8 by default), invalid bytes replaced.
    """
    kind = spec.get("kind")
    if kind == "none":
        return None, _meta("NoneType", 0)
    if kind == "text" and spec.get("lazy"):
        try:
            large = LargeText(str(spec["path"]))
        except OSError as exc:
            raise ContextLoadError(f"cannot map context file {spec['path']!r}: {exc}") from None
        return large, _meta(
            "LargeText", large.nbytes, preview=large[:PREVIEW_CHARS], files=1, size_unit="bytes"
        )
    if kind == "text":
        text = _read_text(str(spec["path"]), _encoding(spec))
        return text, _meta("str", len(text), preview=text, files=int(spec.get("files", 0)))
    if kind == "bytes":
        return _load_bytes(spec)
    if kind == "json":
        return _load_json(spec)
    if kind == "texts":
        return _load_texts(spec)
    if kind == "corpus":
        return _load_corpus(spec)
    if kind == "table":
        from rlm_engine.sandbox.worker_table import load_tables

        return load_tables(spec)
    raise ContextLoadError(f"unknown context kind {kind!r}")
