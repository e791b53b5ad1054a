"""A reply script in a JSONL file, for ``rlm sim serve --script FILE``.

Each line is one reply. ``{"root": "..."}`` is a reply of the root model (a request whose
system prompt is the engine's root prompt, a child RLM's included) and ``{"sub": "..."}``
one of a sub-call; each kind is used in file order. A file of plain replies (``"..."`` or
``{"reply": "..."}``, the format of the ``scripted/`` model) answers every request in
order, whatever its kind. Blank lines and lines starting with ``#`` are skipped.

When a run has used up the script, the next run (a new root conversation) starts it
over, so one server answers ``rlm ask`` as often as it is asked. A request past the end
of the script within a run gets an error reply saying so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

from rlm_engine.errors import ConfigurationError
from rlm_engine.sim.oracle import ROOT_PROMPT_START
from rlm_engine.sim.policies import JsonMessage, PolicyExhaustedError, message_text

Role = Literal["root", "sub"]
_ROLES: tuple[Role, ...] = ("root", "sub")
_HINT = (
    'write one JSON object per line: {"root": "reply text"} or {"sub": "reply text"} '
    "(see docs/examples/scripted.jsonl)"
)


@dataclass(frozen=True, slots=True)
class ReplyScript:
    """The replies of a script file: per kind, or one list for every request."""

    path: str
    root: tuple[str, ...] = ()
    sub: tuple[str, ...] = ()
    shared: tuple[str, ...] | None = None


def _fail(where: str, problem: str) -> ConfigurationError:
    return ConfigurationError(f"{where}: {problem}", hint=_HINT)


def _parse_line(where: str, line: str) -> tuple[Role | None, str]:
    """``(role, text)`` of one line; ``role`` is ``None`` for a plain reply."""
    try:
        item: Any = json.loads(line)
    except json.JSONDecodeError as exc:
        raise _fail(where, f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    if isinstance(item, str):
        return None, item
    if not isinstance(item, dict):
        raise _fail(where, f"expected a JSON object or string, got {type(item).__name__}")
    fields = cast(dict[str, Any], item)
    keys = sorted(fields)
    if len(keys) != 1 or keys[0] not in (*_ROLES, "reply"):
        raise _fail(where, f'expected one key, "root", "sub" or "reply"; got {keys}')
    key = keys[0]
    text = fields[key]
    if not isinstance(text, str):
        raise _fail(where, f'the value of "{key}" must be a string, not {type(text).__name__}')
    return (None if key == "reply" else key), text


def load_script(path: str | Path) -> ReplyScript:
    """Parse a script file; ``ConfigurationError`` names the file and line that is wrong."""
    file = Path(path)
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(
            f"cannot read the reply script {file}: {exc}", hint=_HINT
        ) from None
    replies: dict[Role, list[str]] = {"root": [], "sub": []}
    plain: list[str] = []
    first: dict[bool, int] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        where = f"{file}:{number}"
        role, text = _parse_line(where, line)
        first.setdefault(role is None, number)
        if len(first) == 2:
            this, that = (
                ("a plain reply", "a root/sub key")
                if role is None
                else (
                    "a root/sub key",
                    "a plain reply",
                )
            )
            raise _fail(
                where,
                f"{this} here but {that} on line {first[role is not None]}; use root/sub "
                "keys on every line, or plain replies only",
            )
        if role is None:
            plain.append(text)
        else:
            replies[role].append(text)
    if not first:
        raise _fail(str(file), "the script has no replies")
    if plain:
        return ReplyScript(str(file), shared=tuple(plain))
    return ReplyScript(str(file), root=tuple(replies["root"]), sub=tuple(replies["sub"]))


def request_role(messages: list[JsonMessage]) -> Role:
    """``root`` when the conversation opens with the engine's root system prompt."""
    opening = messages[0] if messages else {}
    if opening.get("role") == "system" and message_text(opening).startswith(ROOT_PROMPT_START):
        return "root"
    return "sub"


class ScriptFilePolicy:
    """Answers requests from a ``ReplyScript``; see the module docstring for the rules."""

    def __init__(self, script: ReplyScript) -> None:
        self.script = script
        self._used: dict[str, int] = {"root": 0, "sub": 0, "shared": 0}

    @classmethod
    def from_file(cls, path: str | Path) -> ScriptFilePolicy:
        return cls(load_script(path))

    def _queue(self, role: Role) -> tuple[str, tuple[str, ...]]:
        if self.script.shared is not None:
            return "shared", self.script.shared
        return role, self.script.root if role == "root" else self.script.sub

    def _exhausted(self) -> bool:
        if self.script.shared is not None:
            return self._used["shared"] >= len(self.script.shared)
        return self._used["root"] >= len(self.script.root)

    def __call__(self, model: str, messages: list[JsonMessage], /) -> str:
        role = request_role(messages)
        opens_run = role == "root" and not any(m.get("role") == "assistant" for m in messages)
        if opens_run and self._exhausted():
            self._used = dict.fromkeys(self._used, 0)
        name, replies = self._queue(role)
        index = self._used[name]
        if index >= len(replies):
            kind = "" if name == "shared" else f"{role} "
            raise PolicyExhaustedError(
                f"the reply script {self.script.path} has no {kind}reply left: it has "
                f"{len(replies)} and this is {kind}request {index + 1}; add lines to the "
                "script or restart `rlm sim serve`"
            )
        self._used[name] = index + 1
        return replies[index]
