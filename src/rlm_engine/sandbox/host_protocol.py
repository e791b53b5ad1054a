"""Host-side checks of what the worker sends.

The worker runs untrusted code that can write anything to its end of the protocol pipe,
so every frame is checked against its schema here and rebuilt from known fields only
before it reaches the handler or the caller.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from rlm_engine.sandbox.base import ContextMeta, FinalValue, NamespaceSnapshot
from rlm_engine.sandbox.worker_monotonic import MAX_READS

HOST_METHODS = frozenset(
    {
        "llm_query",
        "llm_query_batched",
        "rlm_query",
        "rlm_query_batched",
        "memory_get",
        "memory_set",
        "memory_keys",
        "tool",
    }
)
MAX_PREVIEW_CHARS = 200
MAX_CHUNK_LENGTHS = 100


class ProtocolViolation(Exception):
    """A frame from the worker does not match the protocol; the worker cannot be trusted."""


class InvalidCall(Exception):
    """A call frame names an unknown method or carries malformed parameters."""

    def __init__(self, call_id: int, message: str) -> None:
        super().__init__(message)
        self.call_id = call_id


@dataclass(frozen=True, slots=True)
class Call:
    """A validated request from the REPL for a host method."""

    id: int
    method: str
    params: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CellReply:
    """A validated ``exec`` reply."""

    ok: bool
    output: str
    error: str | None
    final: FinalValue | None
    dropped: int
    interrupted: bool
    clock_reads: tuple[int, ...] = ()


def _is_str(value: object) -> bool:
    return isinstance(value, str)


def _is_optional_str(value: object) -> bool:
    return value is None or isinstance(value, str)


def _is_str_list(value: object) -> bool:
    return isinstance(value, list) and all(
        isinstance(item, str) for item in cast(list[object], value)
    )


def _is_anything(value: object) -> bool:
    return True  # already valid JSON: any shape is a legal value here


def _is_optional_list(value: object) -> bool:
    return value is None or isinstance(value, list)


def _is_list(value: object) -> bool:
    return isinstance(value, list)


def _is_str_dict(value: object) -> bool:
    return isinstance(value, dict) and all(
        isinstance(key, str) for key in cast(dict[object, object], value)
    )


_SCHEMAS: dict[str, dict[str, Callable[[object], bool]]] = {
    "llm_query": {"prompt": _is_str, "model": _is_optional_str},
    "llm_query_batched": {"prompts": _is_str_list, "model": _is_optional_str},
    "rlm_query": {"prompt": _is_str, "context": _is_anything},
    "rlm_query_batched": {"prompts": _is_str_list, "contexts": _is_optional_list},
    "memory_get": {"key": _is_str},
    "memory_set": {"key": _is_str, "value": _is_anything},
    "memory_keys": {},
    "tool": {"name": _is_str, "args": _is_list, "kwargs": _is_str_dict},
}


def as_object(value: object) -> dict[str, Any] | None:
    """``value`` as a JSON object with string keys, or None."""
    if isinstance(value, dict):
        return cast(dict[str, Any], value)
    return None


def frame_id(message: Mapping[str, Any]) -> int | None:
    """The integer ``id`` of a frame (booleans are not ids)."""
    value = message.get("id")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def parse_call(message: Mapping[str, Any], tools: frozenset[str]) -> Call:
    """Validate a ``call`` frame. ``ProtocolViolation`` if it has no usable id,
    ``InvalidCall`` (answered to the cell) if the method or its parameters are wrong."""
    call_id = frame_id(message)
    if call_id is None:
        raise ProtocolViolation("call frame without an integer id")
    method = message.get("method")
    if not isinstance(method, str) or method not in HOST_METHODS:
        raise InvalidCall(call_id, f"unknown host method {method!r}")
    raw = as_object(message.get("params"))
    if raw is None:
        raise InvalidCall(call_id, f"{method}: params must be an object")
    params: dict[str, Any] = {}
    for name, check in _SCHEMAS[method].items():
        value = raw.get(name)
        if not check(value):
            raise InvalidCall(call_id, f"{method}: invalid parameter {name!r}")
        params[name] = value
    if method == "tool" and params["name"] not in tools:
        raise InvalidCall(call_id, f"no tool named {params['name']!r}")
    contexts = params.get("contexts")
    if contexts is not None and len(contexts) != len(params["prompts"]):
        raise InvalidCall(call_id, "rlm_query_batched: one context per prompt is required")
    return Call(call_id, method, params)


def _final(value: object) -> FinalValue | None:
    if value is None:
        return None
    data = as_object(value)
    if data is None:
        raise ProtocolViolation("final must be an object or null")
    if data.get("kind") == "final" and isinstance(data.get("answer"), str):
        return FinalValue(kind="final", answer=data["answer"])
    fields = as_object(data.get("fields"))
    if data.get("kind") == "submit" and fields is not None:
        answer = json.dumps(fields, ensure_ascii=False)
        return FinalValue(kind="submit", answer=answer, fields=fields)
    raise ProtocolViolation("malformed final value")


def _count(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ProtocolViolation(f"{what} must be a non-negative integer")
    return value


def parse_cell_reply(value: object) -> CellReply:
    """Validate the value of a successful ``exec`` reply."""
    data = as_object(value)
    if data is None:
        raise ProtocolViolation("exec reply must be an object")
    status, output, error = data.get("status"), data.get("output"), data.get("error")
    if status not in ("ok", "error") or not isinstance(output, str):
        raise ProtocolViolation("exec reply has a bad status or output")
    if not _is_optional_str(error) or not isinstance(data.get("interrupted"), bool):
        raise ProtocolViolation("exec reply has a bad error or interrupted flag")
    return CellReply(
        ok=status == "ok",
        output=output,
        error=cast(str | None, error),
        final=_final(data.get("final")),
        dropped=_count(data.get("dropped"), "dropped"),
        interrupted=bool(data["interrupted"]),
        clock_reads=parse_clock_reads(data.get("clock_reads")),
    )


def parse_clock_reads(value: object) -> tuple[int, ...]:
    """A journaled cell's precise-clock reads: at most ``MAX_READS`` 64-bit integers (the
    cell's code could forge them; bounded, they cost the journal little)."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ProtocolViolation("clock_reads must be a list")
    reads = cast(list[object], value)
    if len(reads) > MAX_READS or not all(
        isinstance(r, int) and not isinstance(r, bool) and -(2**63) <= r < 2**63 for r in reads
    ):
        raise ProtocolViolation(f"clock_reads must be at most {MAX_READS} 64-bit integers")
    return tuple(cast(list[int], reads))


def _extra(value: object) -> dict[str, Any]:
    """Only small scalars survive: ``extra`` is shown to the root model."""
    kept: dict[str, Any] = {}
    for key, item in list((as_object(value) or {}).items())[:50]:
        if isinstance(item, bool | int | float) or (isinstance(item, str) and len(item) <= 200):
            kept[key[:100]] = item
    return kept


def parse_context_meta(value: object) -> ContextMeta:
    """Validate context metadata; clip the preview and the chunk list to their limits."""
    data = as_object(value)
    if data is None:
        raise ProtocolViolation("context metadata must be an object")
    kind, preview, chunks = data.get("type"), data.get("preview"), data.get("chunk_lengths")
    if not isinstance(kind, str) or not isinstance(preview, str) or not isinstance(chunks, list):
        raise ProtocolViolation("context metadata has a bad type, preview or chunk list")
    lengths = tuple(_count(item, "chunk length") for item in cast(list[object], chunks))
    return ContextMeta(
        type=kind[:100],
        total_chars=_count(data.get("total_chars"), "total_chars"),
        chunk_lengths=lengths[:MAX_CHUNK_LENGTHS],
        preview=preview[:MAX_PREVIEW_CHARS],
        files=_count(data.get("files"), "files"),
        extra=_extra(data.get("extra")),
    )


def parse_vars(value: object) -> dict[str, str]:
    """Validate a ``list_vars`` reply: names to short descriptions."""
    data = as_object(value)
    if data is None or not all(isinstance(item, str) for item in data.values()):
        raise ProtocolViolation("list_vars reply must map names to strings")
    return {str(key): cast(str, item) for key, item in data.items()}


MAX_SKIPPED_NAMES = 100


def parse_snapshot(value: object, max_bytes: int) -> NamespaceSnapshot:
    """Validate a ``snapshot`` reply. The pickle stays opaque bytes: it is decoded from
    base64 and measured, never unpickled here."""
    data = as_object(value)
    if data is None:
        raise ProtocolViolation("snapshot reply must be an object")
    encoded, reason, skipped = data.get("data"), data.get("reason"), data.get("skipped", [])
    if not _is_optional_str(encoded) or not _is_optional_str(reason):
        raise ProtocolViolation("snapshot reply has a bad data or reason field")
    if not _is_str_list(skipped) or not isinstance(data.get("unchanged", False), bool):
        raise ProtocolViolation("snapshot reply has a bad skipped list or unchanged flag")
    names = tuple(name[:100] for name in cast(list[str], skipped)[:MAX_SKIPPED_NAMES])
    raw: bytes | None = None
    if encoded is not None:
        if len(encoded) > (max_bytes + 2) // 3 * 4 + 4:
            raise ProtocolViolation("snapshot larger than the size cap")
        try:
            raw = base64.b64decode(cast(str, encoded), validate=True)
        except (binascii.Error, ValueError):
            raise ProtocolViolation("snapshot data is not base64") from None
    unchanged = bool(data.get("unchanged", False)) and raw is None
    why = cast(str | None, reason)
    return NamespaceSnapshot(raw, unchanged, names, None if why is None else why[:300])
