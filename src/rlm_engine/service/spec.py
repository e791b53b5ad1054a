"""`RunSpec`: what rebuilds the same RLM on resume, stored with the run as JSON.

The JSON keys are the ones runs have always been stored with (one per field, lists for
tuples; ``restored_from`` is kept as ``session_runs``), so every stored run loads back. A
missing key takes its default; an unknown one is refused by name, so a misspelt setting
never silently does nothing. The shape's version is the run's ``settings_version``
(`run_records.SETTINGS_VERSION`), kept beside the settings, not in them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast, get_args

from rlm_engine.errors import ConfigurationError

OutputMode = Literal["truncate", "digest"]
ResponseCacheMode = Literal["auto", "on", "off"]
BinaryMode = Literal["refuse", "bytes"]
IsolationMode = Literal["auto", "strict", "none"]

RESTORED_FROM = "session_runs"
"""The stored key of `RunSpec.restored_from`: the earlier runs a session's REPL was
restored from when the run began."""

CONFIG_KEYS = (
    "max_iterations",
    "max_depth",
    "max_children",
    "max_concurrency",
    "max_sub_calls",
    "max_prompt_bytes",
    "sub_context_tokens",
    "max_answer_bytes",
    "max_cost_usd",
    "max_seconds",
    "cell_timeout_s",
    "memory_mb",
    "output_mode",
    "response_cache",
    "max_tokens",
    "max_output_chars",
)
"""The fields that are `RLMConfig` fields of the same name (None: the engine's default)."""


@dataclass(frozen=True, slots=True)
class RunSpec:
    """One run's models, limits, contexts and plugins. Only `model` is required; None
    leaves a limit at the engine's default."""

    model: str
    sub_model: str | None = None
    fallback_models: tuple[str, ...] = ()
    context: tuple[str, ...] = ()
    """Absolute paths of the context files or directory, as given."""
    max_iterations: int | None = None
    max_depth: int | None = None
    max_children: int | None = None
    max_concurrency: int | None = None
    max_sub_calls: int | None = None
    max_prompt_bytes: int | None = None
    sub_context_tokens: int | None = None
    max_answer_bytes: int | None = None
    max_cost_usd: float | None = None
    max_seconds: float | None = None
    cell_timeout_s: float | None = None
    memory_mb: int | None = None
    request_timeout_s: float | None = None
    output_mode: OutputMode | None = None
    max_tokens: int | None = None
    max_output_chars: int | None = None
    temperature: float | None = None
    max_output_tokens: int | None = None
    sub_temperature: float | None = None
    sub_max_output_tokens: int | None = None
    base_url: str | None = None
    api_key_env: str | None = None
    """The NAME of the variable holding the root provider's key; the key is never stored."""
    binary: BinaryMode = "refuse"
    encoding: str | None = None
    response_cache: ResponseCacheMode | None = None
    instructions: str = ""
    plugins: tuple[str, ...] = ()
    no_default_plugins: bool = False
    isolation: IsolationMode = "auto"
    restored_from: tuple[str, ...] = ()
    """Run ids whose cells rebuilt a session's REPL before this run's question."""
    output_schema: dict[str, Any] | None = None
    """A JSON schema of the object `SUBMIT(...)` must give (checked, and sent back to the
    root to fix when its fields do not fit); None: any answer."""
    tools: tuple[str, ...] = ()
    """Built-in tool sets the REPL offers (`service.tool_sets`: ``databricks-sql``)."""
    artifacts: str | None = None
    """The lakehouse root whose artifact registry this run's cells go to, each run by a
    separate executor process; None: the run's own sandbox."""
    spec_version: int = 1

    def to_json(self) -> dict[str, Any]:
        """The settings dict stored with the run (JSON types only)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name == "spec_version":
                continue
            value: object = getattr(self, f.name)
            if f.name == "restored_from":
                if value:  # runs outside a session never stored the key
                    out[RESTORED_FROM] = list(self.restored_from)
                continue
            if f.name in ("output_schema", "artifacts", "tools") and not value:
                continue  # runs without one never stored the key

            if isinstance(value, tuple):
                value = list(cast(tuple[str, ...], value))
            out[f.name] = value
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunSpec:
        """The spec a stored settings dict describes; `ConfigurationError` names any key
        or value it cannot take."""
        names = {f.name: f for f in dataclasses.fields(cls)}
        keys = {RESTORED_FROM if k == "restored_from" else k: k for k in names}
        unknown = sorted(str(k) for k in data if k not in keys)
        if unknown:
            raise ConfigurationError(
                f"unknown run setting(s): {', '.join(unknown)}",
                hint=f"known settings: {', '.join(sorted(keys))}",
            )
        if "model" not in data or not isinstance(data["model"], str) or not data["model"]:
            raise ConfigurationError(
                "a run's settings must name its model", hint="give model as provider/model"
            )
        values: dict[str, Any] = {}
        for key, value in data.items():
            name = keys[key]
            values[name] = _checked(name, names[name].type, value)
        return cls(**values)

    def config(self) -> dict[str, Any]:
        """The `RLMConfig` fields this spec sets (those left None keep the defaults)."""
        return {k: getattr(self, k) for k in CONFIG_KEYS if getattr(self, k) is not None}

    def capped(self, *, max_seconds: float | None, max_depth: int | None) -> RunSpec:
        """This spec with its time and depth held to the given caps (the smaller wins)."""
        seconds = self.max_seconds
        if max_seconds is not None:
            seconds = max_seconds if seconds is None else min(seconds, max_seconds)
        depth = self.max_depth
        if max_depth is not None:
            depth = max_depth if depth is None else min(depth, max_depth)
        return dataclasses.replace(self, max_seconds=seconds, max_depth=depth)


_LITERALS: dict[str, tuple[str, ...]] = {
    "OutputMode | None": get_args(OutputMode),
    "ResponseCacheMode | None": get_args(ResponseCacheMode),
    "BinaryMode": get_args(BinaryMode),
    "IsolationMode": get_args(IsolationMode),
}


def _bad(name: str, value: object, what: str) -> ConfigurationError:
    return ConfigurationError(
        f"run setting {name} is {value!r}, not {what}", hint=f"give {name} as {what}"
    )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_strings(value: object) -> bool:
    items = cast(list[object], value) if isinstance(value, (list, tuple)) else None
    return items is not None and all(isinstance(item, str) for item in items)


# The field's type (its annotation, as a string) -> the check and what it expects.
_SCALARS: dict[str, tuple[Callable[[object], bool], str]] = {
    "tuple[str, ...]": (_is_strings, "a list of strings"),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "int": (_is_int, "a whole number"),
    "float": (_is_number, "a number"),
    "str": (lambda v: isinstance(v, str), "a string"),
    "dict[str, Any]": (lambda v: isinstance(v, dict), "a JSON object"),
}


def _checked(name: str, annotation: object, value: object) -> Any:
    """``value`` as the field's type (lists become tuples, whole numbers of float fields
    floats); the annotations are strings (`from __future__ import annotations`)."""
    kind = str(annotation)
    if value is None:
        if kind.endswith(" | None"):
            return None
        raise _bad(name, value, kind)
    if kind in _LITERALS:
        choices = _LITERALS[kind]
        if value not in choices:
            raise _bad(name, value, "one of " + ", ".join(choices))
        return value
    base = kind.removesuffix(" | None")
    check, expected = _SCALARS[base]
    if not check(value):
        raise _bad(name, value, expected)
    if base == "tuple[str, ...]":
        return tuple(cast(list[str], value))
    if base == "float":
        return float(cast(float, value))
    return value
