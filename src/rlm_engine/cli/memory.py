"""``rlm memory``: what runs remember, per session (``--session NAME``) or per user.

The user scope is the OS user name, the same scope ``rlm ask`` gives the REPL's
``memory`` when no session is named. Values are JSON: ``rlm memory set k '[1, 2]'``
stores a list; a value that is not valid JSON is stored as the string it is.
"""

from __future__ import annotations

import argparse
import getpass
import json
from typing import Any

from rlm_engine.cli.store_access import cli_store, print_json
from rlm_engine.errors import ConfigurationError
from rlm_engine.store.records import MemoryItem, MemoryScope


class UnknownMemoryKeyError(ConfigurationError):
    """`rlm memory get` of a key nothing was remembered under."""


def user_name() -> str:
    """The OS user the user scope belongs to."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no LOGNAME/USER (some containers)
        return "default"


def scope_of(args: argparse.Namespace) -> MemoryScope:
    session: str | None = args.session
    return MemoryScope.session(session) if session else MemoryScope.user(user_name())


def parse_value(raw: str) -> Any:
    """JSON when it parses (numbers, lists, objects, true/false/null, quoted strings),
    otherwise the text itself."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def item_record(item: MemoryItem) -> dict[str, Any]:
    return {
        "scope": item.scope.kind,
        "name": item.scope.name,
        "key": item.key,
        "value": item.value,
        "updated_at": item.updated_at,
    }


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _where(scope: MemoryScope) -> str:
    return f"session {scope.name!r}" if scope.kind == "session" else f"user {scope.name!r}"


def memory_get(args: argparse.Namespace) -> int:
    scope = scope_of(args)
    with cli_store() as store:
        item = store.memory_get(scope, args.key)
    if item is None:
        raise UnknownMemoryKeyError(
            f"nothing remembered under {args.key!r} for {_where(scope)}; "
            "`rlm memory list` shows the keys"
        )
    if args.json:
        print_json(item_record(item))
    else:
        print(_text(item.value))
    return 0


def memory_set(args: argparse.Namespace) -> int:
    scope = scope_of(args)
    with cli_store() as store:
        if scope.kind == "session":
            # Memory of a session that does not exist would be orphaned: open it first.
            store.open_session(scope.name)
        item = store.memory_set(scope, args.key, parse_value(args.value))
    if args.json:
        print_json(item_record(item))
    else:
        print(f"{args.key} = {_text(item.value)} ({_where(scope)})")
    return 0


def memory_list(args: argparse.Namespace) -> int:
    scope = scope_of(args)
    with cli_store() as store:
        items = store.memory_list(scope)
    if args.json:
        print_json([item_record(item) for item in items])
        return 0
    for item in items:
        print(f"{item.key} = {_text(item.value)}")
    return 0
