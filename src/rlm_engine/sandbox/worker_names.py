"""The names the REPL offers to model-written code (worker side, stdlib only).

Every function that reaches the host validates its arguments here first, so a mistake in
the cell becomes a clear ``TypeError`` in the cell rather than an opaque host error.
"""

from __future__ import annotations

import builtins
import json
import types
from collections.abc import Iterable, Iterator, Sized
from typing import Any, Protocol, cast

from rlm_engine.sandbox.corpus import Corpus
from rlm_engine.sandbox.large_text import LargeText
from rlm_engine.sandbox.worker_channel import CellOwner, HostKeyError
from rlm_engine.sandbox.worker_workspace import Workspace

RESERVED_NAMES = frozenset(
    {
        "context",
        "llm_query",
        "llm_query_batched",
        "rlm_query",
        "rlm_query_batched",
        "FINAL",
        "FINAL_VAR",
        "SUBMIT",
        "SHOW_VARS",
        "memory",
        "workspace",
        "sql",
    }
)


class Caller(Protocol):
    def call(self, method: str, params: dict[str, Any]) -> Any: ...


def _json_copy(value: Any, what: str) -> Any:
    """A JSON round trip: proves ``value`` can cross the wire and snapshots it."""
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"{what} must be JSON-serialisable (str, int, float, bool, None, list, dict); "
            f"got {type(value).__name__}: {exc}"
        ) from None


def _require_str(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    return value


def _optional_str(value: object, what: str) -> str | None:
    return None if value is None else _require_str(value, what)


def _str_list(values: object, what: str) -> list[str]:
    if isinstance(values, str) or not isinstance(values, Iterable):
        raise TypeError(f"{what} must be a list of str, not {type(values).__name__}")
    items = list(cast(Iterable[object], values))
    return [_require_str(item, f"{what}[{index}]") for index, item in enumerate(items)]


def _expect_str(value: object, method: str) -> str:
    if not isinstance(value, str):
        raise RuntimeError(f"{method}: the host returned {type(value).__name__}, not str")
    return value


def _expect_str_list(value: object, method: str, count: int) -> list[str]:
    if not isinstance(value, list):
        raise RuntimeError(f"{method}: the host returned {type(value).__name__}, not a list")
    items = cast(list[object], value)
    if len(items) != count:
        raise RuntimeError(f"{method}: the host returned {len(items)} answers for {count} prompts")
    return [_expect_str(item, method) for item in items]


def describe(value: object) -> str:
    """A short type description. Only built-in types are measured, so describing a
    variable never runs code the cell defined (a ``__len__`` could loop forever)."""
    kind = type(value).__name__
    if isinstance(value, str):
        return f"str, {len(value):,} chars"
    if isinstance(value, bytes | bytearray):
        return f"{kind}, {len(value):,} bytes"
    if type(value) is dict:
        return f"dict, {len(cast(dict[object, object], value)):,} keys"
    if type(value) in (list, tuple, set, frozenset):
        return f"{kind}, {len(cast(Sized, value)):,} items"
    if isinstance(value, Corpus):
        return f"Corpus, {len(value):,} files"
    if isinstance(value, LargeText):
        return f"LargeText, {value.nbytes:,} bytes (memory-mapped)"
    if isinstance(value, types.FunctionType | types.BuiltinFunctionType):
        return "function"
    if isinstance(value, type):
        return "class"
    return kind


class VarsReport(dict[str, str]):
    """What ``SHOW_VARS`` returns; the REPL does not echo it a second time."""


class HostMemory:
    """A dict-like view of the host's memory store (it outlives this REPL)."""

    def __init__(self, channel: Caller) -> None:
        self._channel = channel

    def bind(self, channel: Caller, name: str) -> None:
        """Drop whatever a cell set on this object and use ``channel`` again."""
        vars(self).clear()
        self._channel = channel

    def __getitem__(self, key: str) -> Any:
        try:
            return self._channel.call("memory_get", {"key": _require_str(key, "memory key")})
        except HostKeyError:
            raise KeyError(key) from None

    def __setitem__(self, key: str, value: Any) -> None:
        params = {
            "key": _require_str(key, "memory key"),
            "value": _json_copy(value, "memory value"),
        }
        self._channel.call("memory_set", params)

    def get(self, key: str, default: Any = None) -> Any:
        """``memory[key]``, or ``default`` if the key is absent."""
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        try:
            self[key]
        except KeyError:
            return False
        return True

    def keys(self) -> list[str]:
        """The stored keys."""
        return _str_list(self._channel.call("memory_keys", {}), "memory keys")

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __repr__(self) -> str:
        return "<host memory: memory[key], memory[key] = value, memory.get(), memory.keys()>"


class HostTool:
    """A user tool that runs on the host: ``name(*args, **kwargs)``."""

    def __init__(self, name: str, channel: Caller) -> None:
        self.bind(channel, name)

    def bind(self, channel: Caller, name: str) -> None:
        """Drop whatever a cell set on this object; call tool ``name`` on ``channel``."""
        vars(self).clear()
        self._name = name
        self._channel = channel
        self.__name__ = name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        params = {
            "name": self._name,
            "args": _json_copy(list(args), f"arguments of {self._name}()"),
            "kwargs": _json_copy(kwargs, f"keyword arguments of {self._name}()"),
        }
        return self._channel.call("tool", params)

    def __repr__(self) -> str:
        return f"<host tool {self._name}>"


class ReplNames:
    """Builds the reserved names and records what ``FINAL``/``SUBMIT`` set in a cell."""

    def __init__(
        self,
        channel: Caller,
        namespace: dict[str, Any],
        tools: Iterable[str],
        *,
        workspace: str | None = None,
        owner: CellOwner | None = None,
    ) -> None:
        self._channel = channel
        self._namespace = namespace
        self._owner = owner or CellOwner()
        self._tools: tuple[str, ...] = tuple(tools)
        self.context: Any = None
        self.final: dict[str, Any] | None = None
        self.tool_names: frozenset[str] = frozenset()
        self._fixed: dict[str, Any] = {
            "llm_query": self.llm_query,
            "llm_query_batched": self.llm_query_batched,
            "rlm_query": self.rlm_query,
            "rlm_query_batched": self.rlm_query_batched,
            "FINAL": self.FINAL,
            "FINAL_VAR": self.FINAL_VAR,
            "SUBMIT": self.SUBMIT,
            "SHOW_VARS": self.SHOW_VARS,
            "memory": HostMemory(channel),
        }
        self.set_tools(self._tools)
        if workspace is not None:
            self._fixed["workspace"] = Workspace(workspace)

    def helpers(self) -> dict[str, Any]:
        """The helper objects as built, for ``rewire`` to put back."""
        return dict(self._fixed)

    def rewire(
        self, channel: Caller, namespace: dict[str, Any], owner: CellOwner, helpers: dict[str, Any]
    ) -> None:
        """Reset this object and the helpers to the worker's own channel, namespace and
        cell owner: a cell may have replaced any attribute reachable from a helper. The
        helpers keep their identity, so a cell's alias of one stays recognisable."""
        context, final = self.context, self.final
        tools = tuple(name for name, helper in helpers.items() if isinstance(helper, HostTool))
        vars(self).clear()
        self._channel, self._namespace, self._owner = channel, namespace, owner
        self._tools, self.tool_names = tools, frozenset(tools)
        self._fixed = dict(helpers)
        self.context, self.final = context, final
        for name, helper in helpers.items():
            if isinstance(helper, HostTool | HostMemory):
                helper.bind(channel, name)

    def set_tools(self, tools: Iterable[str]) -> None:
        """Replace the host tools offered as callables (a pooled worker learns its
        owner's tools on acquisition)."""
        for name in self.tool_names:
            self._fixed.pop(name, None)
            self._namespace.pop(name, None)
        self._tools = tuple(tools)
        self.tool_names = frozenset(self._tools)
        for name in self.tool_names:
            self._fixed[name] = HostTool(name, self._channel)

    def set_sql(self, sql: Any) -> None:
        """Offer ``sql`` (a table context's query helper), or withdraw it (None)."""
        self._fixed.pop("sql", None)
        self._namespace.pop("sql", None)
        if sql is not None:
            self._fixed["sql"] = sql

    def install(self) -> None:
        """(Re)bind every reserved name, undoing whatever a cell assigned to them."""
        self._namespace.update(self._fixed)
        self._namespace["context"] = self.context

    def user_vars(self) -> VarsReport:
        """User variables -> short descriptions (no reserved names, modules or dunders)."""
        report = VarsReport()
        for name, value in self._namespace.items():
            if name in RESERVED_NAMES or name in self.tool_names or name.startswith("__"):
                continue
            if isinstance(value, types.ModuleType):
                continue
            report[name] = describe(value)
        return report

    def llm_query(self, prompt: str, model: str | None = None) -> str:
        """Ask a sub-model one question; returns its answer."""
        params = {"prompt": _require_str(prompt, "prompt"), "model": _optional_str(model, "model")}
        return _expect_str(self._channel.call("llm_query", params), "llm_query")

    def llm_query_batched(self, prompts: list[str], model: str | None = None) -> list[str]:
        """Ask many questions at once (the host runs them concurrently); answers in order."""
        items = _str_list(prompts, "prompts")
        params = {"prompts": items, "model": _optional_str(model, "model")}
        return _expect_str_list(
            self._channel.call("llm_query_batched", params), "llm_query_batched", len(items)
        )

    def rlm_query(self, prompt: str, context: Any = None) -> str:
        """Hand a sub-problem and its own context (str, list or dict) to a child RLM."""
        params = {
            "prompt": _require_str(prompt, "prompt"),
            "context": _json_copy(context, "rlm_query context"),
        }
        return _expect_str(self._channel.call("rlm_query", params), "rlm_query")

    def rlm_query_batched(self, prompts: list[str], contexts: list[Any] | None = None) -> list[str]:
        """Several child RLMs at once; ``contexts`` is None or one context per prompt."""
        items = _str_list(prompts, "prompts")
        copied: Any = None
        if contexts is not None:
            copied = _json_copy(list(contexts), "rlm_query_batched contexts")
            if len(copied) != len(items):
                raise ValueError(f"got {len(copied)} contexts for {len(items)} prompts")
        params = {"prompts": items, "contexts": copied}
        return _expect_str_list(
            self._channel.call("rlm_query_batched", params), "rlm_query_batched", len(items)
        )

    def FINAL(self, answer: Any) -> None:
        """Record the final answer (``str(answer)``); the cell keeps running."""
        self._record({"kind": "final", "answer": str(answer)})

    def _record(self, final: dict[str, Any]) -> None:
        # A thread left over from an earlier cell cannot answer for this one.
        cell = self._owner.of_caller()
        if cell is None:
            self._owner.stale_finals += 1
            return
        self.final = {**final, "cell": cell}

    def FINAL_VAR(self, name: Any) -> None:
        """Record the value of the variable named ``name`` as the final answer."""
        if isinstance(name, str):
            key = name.strip()
            if key not in self._namespace:
                raise NameError(
                    f"FINAL_VAR({name!r}): no variable named {key!r} exists in the REPL; "
                    f"assign it first (e.g. {key} = ...) or call FINAL(value)"
                )
            value = self._namespace[key]
        else:
            value = name
        self._record({"kind": "final", "answer": str(value)})

    def SUBMIT(self, **fields: Any) -> None:
        """Record named output fields; every value must be JSON-serialisable."""
        copied = {key: _json_copy(value, f"SUBMIT field {key!r}") for key, value in fields.items()}
        self._record({"kind": "submit", "fields": copied})

    def SHOW_VARS(self) -> VarsReport:
        """Print and return your variables with short type descriptions."""
        report = self.user_vars()
        if not report:
            print("(no variables yet)")
        for name, description in report.items():
            print(f"{name}: {description}")
        return report


# Undoing what a cell did to the worker's own code.
#
# Model-written code runs in the worker's process and can reach the helpers' internals:
# ``llm_query.__func__.__code__``, ``FINAL.__globals__``, ``builtins``, class attributes, the
# channel object. Everything those helpers depend on is recorded when the worker starts and
# put back before and after each cell, so the next cell's helpers are the real ones. (The host
# still checks and budgets every call: this keeps the REPL usable, it is not the boundary.)

_MISSING = object()
_FunctionState = tuple[Any, ...]


def _function_state(function: types.FunctionType) -> _FunctionState:
    cells = tuple(cell.cell_contents for cell in function.__closure__ or ())
    return (function.__code__, function.__defaults__, function.__kwdefaults__, cells)


def _restore_function(function: types.FunctionType, state: _FunctionState) -> None:
    # Each binding is compared before it is put back: assigning ``__code__``,
    # ``__defaults__`` or ``__kwdefaults__``, even the same value, resets the function's
    # version and with it the interpreter's specialised calls to it, and this runs twice
    # per cell over a few hundred functions (a cell took 0.68 ms in the worker, now 0.26).
    code, defaults, kwdefaults, cells = state
    if function.__code__ is not code:
        function.__code__ = code
    if function.__defaults__ is not defaults:
        function.__defaults__ = defaults
    if function.__kwdefaults__ is not kwdefaults:
        function.__kwdefaults__ = kwdefaults
    if cells:
        for cell, value in zip(function.__closure__ or (), cells, strict=False):
            if cell.cell_contents is not value:
                cell.cell_contents = value


def _functions_of(value: object) -> list[types.FunctionType]:
    if isinstance(value, staticmethod | classmethod):
        value = cast(object, value.__func__)  # pyright: ignore[reportUnknownMemberType]
    if isinstance(value, property):
        return [
            f for f in (value.fget, value.fset, value.fdel) if isinstance(f, types.FunctionType)
        ]
    return [value] if isinstance(value, types.FunctionType) else []


class Pristine:
    """What the worker's modules, their classes and functions, ``builtins`` and a few
    wiring objects looked like at start."""

    def __init__(self, modules: Iterable[types.ModuleType], objects: Iterable[object]) -> None:
        self._builtins = dict(vars(builtins))
        self._modules = [(module, dict(vars(module))) for module in modules]
        self._classes: list[tuple[type, dict[str, Any]]] = []
        self._functions: list[tuple[types.FunctionType, _FunctionState]] = []
        for module, names in self._modules:
            for value in names.values():
                if isinstance(value, type) and value.__module__ == module.__name__:
                    members = dict(vars(value))
                    self._classes.append((value, members))
                    for member in members.values():
                        self._functions.extend(
                            (f, _function_state(f)) for f in _functions_of(member)
                        )
                for function in _functions_of(value):
                    if function.__module__ == module.__name__:
                        self._functions.append((function, _function_state(function)))
        self._objects = [(item, dict(vars(item))) for item in objects]

    def restore(self) -> None:
        """Put back every binding recorded at start. Names added to builtins stay (they
        shadow nothing); a name added to one of the modules could shadow a builtin there,
        so it goes."""
        _restore_dict(builtins.__dict__, self._builtins)
        for module, names in self._modules:
            _restore_dict(module.__dict__, names, drop_extra=True)
        for cls, members in self._classes:
            current = vars(cls)  # a live view of the class's namespace
            for name in [key for key in current if key not in members]:
                delattr(cls, name)
            for name, value in members.items():
                if current.get(name, _MISSING) is not value:
                    setattr(cls, name, value)
        for function, state in self._functions:
            _restore_function(function, state)
        for item, attributes in self._objects:
            _restore_dict(vars(item), attributes, drop_extra=True)


def _restore_dict(
    target: dict[str, Any], recorded: dict[str, Any], *, drop_extra: bool = False
) -> None:
    if drop_extra:
        # Dunders such as ``__warningregistry__`` appear on their own and are harmless.
        for name in [key for key in target if key not in recorded and not key.startswith("__")]:
            del target[name]
    for name, value in recorded.items():
        if target.get(name, _MISSING) is not value:
            target[name] = value
