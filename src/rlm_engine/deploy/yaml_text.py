"""A small YAML writer for the bundle's files: block mappings and lists of plain data.

Every string is written double-quoted with JSON's escapes (YAML 1.2 reads JSON strings as
double-quoted scalars), so a value such as ``on``, ``0123`` or ``a: b`` can never change type
or meaning; numbers and booleans are written as themselves. That is all a bundle needs, and
it keeps the project free of a YAML dependency.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence, Sized
from typing import cast


def dump(data: Mapping[str, object], *, header: str = "") -> str:
    """``data`` as a YAML document; ``header`` lines become comments at its top."""
    lines = [f"# {line}".rstrip() for line in header.splitlines()] if header else []
    lines += _mapping(data, 0)
    return "\n".join(lines) + "\n"


def _scalar(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    raise TypeError(f"cannot write {type(value).__name__} as YAML")


def _is_block(value: object) -> bool:
    """A non-empty mapping or list: written on the lines below its key."""
    return isinstance(value, Mapping | list | tuple) and len(cast(Sized, value)) > 0


def _inline(value: object) -> str:
    """A scalar, or an empty mapping or list, on its key's line."""
    if isinstance(value, Mapping):
        return "{}"
    if isinstance(value, list | tuple):
        return "[]"
    return _scalar(value)


def _mapping(data: Mapping[str, object], indent: int) -> list[str]:
    pad = " " * indent
    lines: list[str] = []
    for key, value in data.items():
        name = key if _plain_key(key) else json.dumps(key)
        if _is_block(value):
            lines.append(f"{pad}{name}:")
            lines += _block(value, indent + 2)
        else:
            lines.append(f"{pad}{name}: {_inline(value)}")
    return lines


def _sequence(items: Sequence[object], indent: int) -> list[str]:
    pad = " " * indent
    lines: list[str] = []
    for item in items:
        if _is_block(item):
            inner = _block(item, indent + 2)
            lines.append(f"{pad}- {inner[0].lstrip()}")
            lines += inner[1:]
        else:
            lines.append(f"{pad}- {_inline(item)}")
    return lines


def _block(value: object, indent: int) -> list[str]:
    if isinstance(value, Mapping):
        return _mapping(cast(Mapping[str, object], value), indent)
    return _sequence(cast(Sequence[object], value), indent)


def _plain_key(key: str) -> bool:
    """Keys made of letters, digits, ``_`` and ``-`` are written bare, as bundles are."""
    return bool(key) and key[0].isalpha() and all(c.isalnum() or c in "_-" for c in key)
