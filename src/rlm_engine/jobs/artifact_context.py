"""A context as the executor receives it: a small JSON spec in the artifact's metadata.

Each executor is a new process that loads the context itself, so the orchestrator
describes the context instead of piping it: paths stay paths (with how to read them),
and an in-memory value (text, JSON-like data) is written once to a content-addressed file
under the session's ``contexts`` directory. The spec's digest is the context's identity,
which the artifact ids build on.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

from rlm_engine.errors import ContextError
from rlm_engine.sandbox.base import ContextValue
from rlm_engine.sandbox.context import ContextFile, read_options

ContextSpec = dict[str, Any]


def _stored(body: bytes, suffix: str, store: Path) -> str:
    name = hashlib.sha256(body).hexdigest()[:32] + suffix
    path = store / name
    if not path.exists():
        store.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{name}.{os.getpid()}")
        partial.write_bytes(body)
        partial.replace(path)
    return str(path)


def _path_spec(value: os.PathLike[str]) -> ContextSpec:
    spec: ContextSpec = {"kind": "path", "path": str(Path(value).absolute())}
    options = read_options(value)
    if options.get("kind") == "bytes":
        spec["as_bytes"] = True
    if options.get("encoding"):
        spec["encoding"] = options["encoding"]
    return spec


def encode_context(value: ContextValue, store: Path) -> ContextSpec:
    """The spec of ``value``; text and mappings are written under ``store``."""
    if value is None:
        return {"kind": "none"}
    if isinstance(value, str):
        return {"kind": "text", "file": _stored(value.encode("utf-8"), ".txt", store)}
    if isinstance(value, os.PathLike):
        return _path_spec(cast(os.PathLike[str], value))
    if isinstance(value, Mapping):
        try:
            body = json.dumps(value, ensure_ascii=False, sort_keys=True).encode("utf-8")
        except (TypeError, ValueError) as exc:
            raise ContextError(
                f"a mapping context must be JSON data to reach the executor: {exc}",
                hint="pass plain dicts, lists, strings and numbers, or a path to a .json file",
            ) from None
        return {"kind": "json", "file": _stored(body, ".json", store)}
    items: list[ContextSpec] = []
    for item in cast(Sequence[object], value):
        if isinstance(item, str):
            items.append(encode_context(item, store))
        elif isinstance(item, os.PathLike):
            items.append(_path_spec(cast(os.PathLike[str], item)))
        else:
            raise ContextError(
                f"a list context holds text or paths, not {type(item).__name__}",
                hint="pass a list of strings or of file paths",
            )
    return {"kind": "list", "items": items}


def decode_context(spec: Mapping[str, Any]) -> ContextValue:
    """The value ``encode_context`` described (``ContextError`` if a file is gone)."""
    kind = spec.get("kind")
    if kind == "none":
        return None
    if kind == "text":
        return _read(spec).decode("utf-8")
    if kind == "json":
        return cast(Mapping[str, Any], json.loads(_read(spec)))
    if kind == "path":
        path = str(spec["path"])
        as_bytes = bool(spec.get("as_bytes"))
        encoding = spec.get("encoding")
        if as_bytes or encoding:
            return ContextFile.of(path, encoding=encoding, as_bytes=as_bytes)
        return Path(path)
    if kind == "list":
        items: list[str | Path] = []
        for item in cast(list[Mapping[str, Any]], spec.get("items") or []):
            decoded = decode_context(item)
            if not isinstance(decoded, (str, Path)):
                raise ContextError("a list context item is neither text nor a path")
            items.append(decoded)
        return items
    raise ContextError(f"unknown context spec {kind!r} in the artifact's metadata")


def context_identity(spec: Mapping[str, Any]) -> str:
    """A digest that is the same for the same context (to derive artifact ids)."""
    text = json.dumps(spec, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


def _read(spec: Mapping[str, Any]) -> bytes:
    path = Path(str(spec.get("file")))
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ContextError(
            f"the artifact's context file {path} cannot be read: {exc}",
            hint="the orchestrator writes it under the artifacts' files root; check that "
            "the executor sees the same files root",
        ) from None
