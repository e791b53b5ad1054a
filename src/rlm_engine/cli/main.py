"""The ``rlm`` command: a registry of sub-commands, each in its own module.

Building the parser imports only the commands' argument definitions
(`rlm_engine.cli.commands`); a command's implementation, with the store, the engine and the
SDKs it needs, is imported when that command runs.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from importlib import import_module

from rlm_engine.errors import ConfigurationError, RLMError

# Argument modules; each exposes ``register(subparsers)``, which sets a lazy ``handler``.
COMMANDS: tuple[str, ...] = (
    "rlm_engine.cli.commands.ask",
    "rlm_engine.cli.commands.bench",
    "rlm_engine.cli.commands.cache",
    "rlm_engine.cli.commands.demo",
    "rlm_engine.cli.commands.memory",
    "rlm_engine.cli.commands.models",
    "rlm_engine.cli.commands.runs",
    "rlm_engine.cli.commands.resume",
    "rlm_engine.cli.commands.sessions",
    "rlm_engine.cli.commands.sim",
)
# The module that defines each top-level command: `rlm ask ...` builds a parser with that
# command only (the others' modules are never imported); anything else, the full one.
COMMAND_MODULES: dict[str, str] = {
    "ask": "rlm_engine.cli.commands.ask",
    "bench": "rlm_engine.cli.commands.bench",
    "cache": "rlm_engine.cli.commands.cache",
    "demo": "rlm_engine.cli.commands.demo",
    "memory": "rlm_engine.cli.commands.memory",
    "models": "rlm_engine.cli.commands.models",
    "runs": "rlm_engine.cli.commands.runs",
    "replay": "rlm_engine.cli.commands.resume",
    "sessions": "rlm_engine.cli.commands.sessions",
    "sim": "rlm_engine.cli.commands.sim",
}

Handler = Callable[[argparse.Namespace], int]


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``rlm`` parser; with a ``command`` of `COMMAND_MODULES`, holding that one only."""
    only = COMMAND_MODULES.get(command or "")
    modules = COMMANDS if only is None else (only,)
    parser = argparse.ArgumentParser(
        prog="rlm",
        description="Recursive Language Models: answer questions over very large contexts.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in modules:
        import_module(module).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv[0] if argv else None)
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return handler(args)
    except ConfigurationError as exc:
        print(f"rlm: {exc}", file=sys.stderr)
        return 2
    except RLMError as exc:
        print(f"rlm: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("rlm: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`rlm runs list --json | head`): stop quietly, like other
        # tools; pointing stdout at /dev/null keeps the exit flush from failing again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
