"""Snapshots of the REPL namespace, taken and restored inside the worker (stdlib only).

A snapshot is a pickle of the user's variables, made here, in the sandbox, and handed to
the host as opaque bytes: the host stores them and later gives them to a NEW sandbox,
which restores them with ``restore``. The host never unpickles them, because whatever a
cell left in its namespace is hostile input.

When a variable does not pickle (an open file, a generator, a socket, a lock, a class
defined in a cell or an instance of one) no snapshot is kept for the cell, and the reply
names the variables: a REPL restored without them would not be the journaled one. Modules
are kept as their names and imported again on restore; functions defined in cells are kept
by value (their code, defaults and closure), so a restored REPL can still call them.
``context`` and the REPL's own helpers are kept as references to what the new sandbox
offers. Pickling runs no ``__reduce__`` of a class defined in a cell.
"""

from __future__ import annotations

import base64
import hashlib
import importlib
import io
import marshal
import pickle
import random
import sys
import types
from collections.abc import Callable, Mapping
from typing import Any, cast

FORMAT = 1
"""Bumped when the layout changes; a snapshot of another format is refused."""
_TAG = f"{FORMAT}:{sys.implementation.cache_tag}"
"""Code objects are kept with ``marshal``, which only the same interpreter version reads."""
MAX_SKIPPED_NAMES = 100


class SnapshotTooLarge(Exception):
    """The pickle passed the size cap; no snapshot is kept for this cell."""


class _Capped(io.BytesIO):
    """A buffer that stops the pickler once it passes ``cap`` bytes, so a huge namespace
    costs at most the cap in memory."""

    def __init__(self, cap: int) -> None:
        super().__init__()
        self._cap = cap

    def write(self, data: Any) -> int:
        written = super().write(data)
        if self.tell() > self._cap:
            raise SnapshotTooLarge
        return written


def _function(
    code: bytes,
    namespace: dict[str, Any],
    name: str,
    defaults: tuple[Any, ...] | None,
    kwdefaults: dict[str, Any] | None,
    closure: tuple[Any, ...] | None,
    qualname: str,
) -> types.FunctionType:
    """Rebuild a function defined in a cell (the reducer of ``_Pickler``)."""
    cells = None if closure is None else tuple(types.CellType(value) for value in closure)
    made = types.FunctionType(marshal.loads(code), namespace, name, defaults, cells)
    made.__kwdefaults__ = kwdefaults
    made.__qualname__ = qualname
    return made


class _Pickler(pickle.Pickler):
    """Pickles the namespace's values with references in place of what the new sandbox
    provides itself (modules, ``context``, the helpers, the namespace)."""

    def __init__(self, out: io.BytesIO, namespace: dict[str, Any], fixed: Mapping[str, Any]):
        super().__init__(out, protocol=pickle.HIGHEST_PROTOCOL)
        self._namespace = namespace
        self._fixed = {id(value): name for name, value in fixed.items()}

    def persistent_id(self, obj: Any) -> Any:
        if obj is self._namespace:
            return ("namespace",)
        if isinstance(obj, types.ModuleType):
            return ("module", obj.__name__)
        name = self._fixed.get(id(obj))
        if name is not None:
            return ("fixed", name)
        return None

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, types.FunctionType) and obj.__globals__ is self._namespace:
            closure = None
            if obj.__closure__ is not None:
                closure = tuple(cell.cell_contents for cell in obj.__closure__)
            args = (
                marshal.dumps(obj.__code__),
                self._namespace,
                obj.__name__,
                obj.__defaults__,
                obj.__kwdefaults__,
                closure,
                obj.__qualname__,
            )
            return _function, args
        if type(obj).__module__ == "__main__" and not isinstance(obj, type):
            # Its class lives only in this REPL, so it could not be loaded anyway; refusing
            # here keeps the cells' own __reduce__ from running at all.
            raise pickle.PicklingError(f"{type(obj).__qualname__} is a class defined in a cell")
        return NotImplemented


class _Unpickler(pickle.Unpickler):
    def __init__(self, data: bytes, namespace: dict[str, Any], fixed: Mapping[str, Any]):
        super().__init__(io.BytesIO(data))
        self._namespace = namespace
        self._fixed = fixed

    def persistent_load(self, pid: Any) -> Any:
        parts: tuple[Any, ...] = cast(tuple[Any, ...], pid) if isinstance(pid, tuple) else ()
        kind = parts[0] if parts else None
        if kind == "namespace":
            return self._namespace
        if kind == "module":
            return importlib.import_module(str(parts[1]))
        if kind == "fixed" and str(parts[1]) in self._fixed:
            return self._fixed[str(parts[1])]
        raise pickle.UnpicklingError(f"unknown reference in the snapshot: {pid!r}")


def _dump(value: Any, namespace: dict[str, Any], fixed: Mapping[str, Any], cap: int) -> bytes:
    out = _Capped(cap)
    _Pickler(out, namespace, fixed).dump(value)
    return out.getvalue()


class Snapshots:
    """Takes snapshots of one worker's namespace and remembers the last one's digest, so
    an unchanged namespace is not sent again."""

    def __init__(self, namespace: dict[str, Any], reserved: Callable[[], frozenset[str]]) -> None:
        self._namespace = namespace
        self._reserved = reserved
        self._last: str | None = None

    def _split(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """(the user's variables, the names the REPL provides itself)."""
        reserved = self._reserved()
        user: dict[str, Any] = {}
        fixed: dict[str, Any] = {}
        for name, value in self._namespace.items():
            if name in reserved:
                fixed[name] = value
            elif not name.startswith("__"):
                user[name] = value
        return user, fixed

    def take(self, max_bytes: int) -> dict[str, Any]:
        """The ``snapshot`` command's reply: the pickle (base64) or why there is none,
        and the names left out."""
        kept, fixed = self._split()
        skipped: list[str] = []
        state = {"vars": kept, "random": random.getstate()}
        try:
            data = self._pickle(state, kept, skipped, fixed, max_bytes)
        except SnapshotTooLarge:
            self._last = None
            return _reply(None, skipped, f"the namespace pickles to more than {max_bytes:,} bytes")
        if skipped:
            # A REPL restored without these would not be the one the journal recorded.
            self._last = None
            return _reply(None, skipped, None)
        digest = hashlib.sha256(data).hexdigest()
        if digest == self._last:
            return {"unchanged": True, "data": None, "skipped": skipped[:MAX_SKIPPED_NAMES]}
        self._last = digest
        return _reply(data, skipped, None)

    def _pickle(
        self,
        state: dict[str, Any],
        kept: dict[str, Any],
        skipped: list[str],
        fixed: Mapping[str, Any],
        cap: int,
    ) -> bytes:
        """One pickle of every variable, so values shared between names stay shared;
        when that fails, each name is tried alone and the ones that fail are left out."""
        header = _TAG.encode() + b"\n"
        try:
            return header + _dump(state, self._namespace, fixed, cap)
        except SnapshotTooLarge:
            raise
        except Exception:  # anything a value's __reduce__ may raise
            pass
        for name in list(kept):
            try:
                _dump(kept[name], self._namespace, fixed, cap)
            except SnapshotTooLarge:
                raise
            except Exception:
                del kept[name]
                skipped.append(name)
        return header + _dump(state, self._namespace, fixed, cap)

    def restore(self, encoded: str) -> dict[str, Any]:
        """Load a snapshot into the namespace (the ``restore`` command); returns the names
        restored. Raises ``ValueError`` for a snapshot this worker cannot read."""
        _, fixed = self._split()
        self._last = None
        return _restore(encoded, self._namespace, fixed)


def _reply(data: bytes | None, skipped: list[str], reason: str | None) -> dict[str, Any]:
    encoded = None if data is None else base64.b64encode(data).decode("ascii")
    return {
        "unchanged": False,
        "data": encoded,
        "skipped": skipped[:MAX_SKIPPED_NAMES],
        "reason": reason,
    }


def _restore(encoded: str, namespace: dict[str, Any], fixed: Mapping[str, Any]) -> dict[str, Any]:
    data = base64.b64decode(encoded, validate=True)
    header, _, body = data.partition(b"\n")
    if header.decode("ascii", "replace") != _TAG:
        raise ValueError(
            f"the snapshot was written by another worker version ({header[:40]!r}, "
            f"this one is {_TAG!r})"
        )
    loaded: object = _Unpickler(body, namespace, fixed).load()
    state = cast(dict[str, Any], loaded) if isinstance(loaded, dict) else {}
    if not isinstance(state.get("vars"), dict):
        raise ValueError("the snapshot does not hold a namespace")
    values = cast(dict[str, Any], state["vars"])
    namespace.update(values)
    random.setstate(state["random"])
    return {"names": sorted(values)}
