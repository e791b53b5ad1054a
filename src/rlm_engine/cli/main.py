"""The ``rlm`` command: a registry of sub-commands, each in its own module.

Building the parser imports only the commands' argument definitions
(`rlm_engine.cli.commands`); a command's implementation, with the store, the engine and the
SDKs it needs, is imported when that command runs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from importlib import import_module

from rlm_engine.cli.outcome import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_USAGE
from rlm_engine.errors import ConfigurationError, RLMError, RunInterrupted, hint_for

# Argument modules; each exposes ``register(subparsers)``, which sets a lazy ``handler``.
COMMANDS: tuple[str, ...] = (
    "rlm_engine.cli.commands.ask",
    "rlm_engine.cli.commands.bench",
    "rlm_engine.cli.commands.cache",
    "rlm_engine.cli.commands.databricks",
    "rlm_engine.cli.commands.demo",
    "rlm_engine.cli.commands.jobs",
    "rlm_engine.cli.commands.keys",
    "rlm_engine.cli.commands.mcp",
    "rlm_engine.cli.commands.memory",
    "rlm_engine.cli.commands.models",
    "rlm_engine.cli.commands.runs",
    "rlm_engine.cli.commands.resume",
    "rlm_engine.cli.commands.serve",
    "rlm_engine.cli.commands.sessions",
    "rlm_engine.cli.commands.sim",
)
# The module that defines each top-level command: `rlm ask ...` builds a parser with that
# command only (the others' modules are never imported); anything else, the full one.
COMMAND_MODULES: dict[str, str] = {
    "ask": "rlm_engine.cli.commands.ask",
    "bench": "rlm_engine.cli.commands.bench",
    "cache": "rlm_engine.cli.commands.cache",
    "databricks": "rlm_engine.cli.commands.databricks",
    "demo": "rlm_engine.cli.commands.demo",
    "jobs": "rlm_engine.cli.commands.jobs",
    "keys": "rlm_engine.cli.commands.keys",
    "mcp": "rlm_engine.cli.commands.mcp",
    "memory": "rlm_engine.cli.commands.memory",
    "models": "rlm_engine.cli.commands.models",
    "runs": "rlm_engine.cli.commands.runs",
    "replay": "rlm_engine.cli.commands.resume",
    "serve": "rlm_engine.cli.commands.serve",
    "sessions": "rlm_engine.cli.commands.sessions",
    "sim": "rlm_engine.cli.commands.sim",
}

Handler = Callable[[argparse.Namespace], int]


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``rlm`` parser; with a ``command`` of `COMMAND_MODULES`, holding that one only."""
    only = COMMAND_MODULES.get(command or "")
    modules = COMMANDS if only is None else (only,)
    from rlm_engine.cli.commands.flags import Parser, VersionAction

    parser = Parser(
        prog="rlm",
        description="Recursive Language Models: answer questions over very large contexts.",
    )
    parser.add_argument("--version", action=VersionAction)
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
        return EXIT_USAGE
    return run_handler(handler, args)


def run_handler(handler: Handler, args: argparse.Namespace) -> int:
    """Run a command's handler; the errors a user can act on become a message, a hint and
    an exit status (also for the job console scripts, which share them)."""
    as_json = bool(getattr(args, "json", False))
    try:
        return handler(args)
    except RunInterrupted as exc:
        return _interrupted(exc.run_id, as_json)
    except ConfigurationError as exc:
        return report_error(exc, EXIT_USAGE, as_json, message=str(exc))
    except RLMError as exc:
        return report_error(exc, EXIT_ERROR, as_json)
    except KeyboardInterrupt:
        return _interrupted(None, as_json)
    except BrokenPipeError:
        # The reader went away (`rlm runs list --json | head`): stop quietly, like other
        # tools; pointing stdout at /dev/null keeps the exit flush from failing again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as exc:
        # A file the command touches (a context, an output, the store's directory).
        where = f": {exc.filename}" if exc.filename else ""
        message = f"{exc.strerror or exc}{where}"
        hint = "check that the path exists and that you may read or write it"
        return report_error(exc, EXIT_ERROR, as_json, message=message, hint=hint)
    except Exception as exc:
        if not _from_the_database(exc):
            raise  # a bug: its traceback is what a report needs
        cause = getattr(exc, "orig", None) or exc
        message = f"the store failed: {str(cause).splitlines()[0]}"
        hint = "check that RLM_HOME (or RLM_STORE_URL) is writable and its disk not full"
        return report_error(exc, EXIT_ERROR, as_json, message=message, hint=hint)


def _from_the_database(exc: BaseException) -> bool:
    """A database error the store let through (SQLAlchemy's or sqlite3's), recognised by
    module so that parsing never imports either."""
    return type(exc).__module__.split(".")[0] in ("sqlalchemy", "sqlite3")


def report_error(
    exc: BaseException,
    code: int,
    as_json: bool,
    *,
    message: str | None = None,
    hint: str | None = None,
) -> int:
    """``rlm: <cause>`` and ``rlm: hint: <remedy>`` on stderr; with ``--json`` also one
    object on stdout, so a script reading it sees the failure too."""
    text = message if message is not None else f"{type(exc).__name__}: {exc}"
    remedy = hint if hint is not None else hint_for(exc)
    print(f"rlm: {text}", file=sys.stderr)
    if remedy:
        print(f"rlm: hint: {remedy}", file=sys.stderr)
    run_id = getattr(exc, "run_id", None)
    if isinstance(run_id, str) and _names_no_run(exc):
        run_id = None  # the id of a run the store does not hold: nothing is recorded
    if isinstance(run_id, str):  # the run it stopped is recorded: say which
        print(f"rlm: run {run_id} is recorded; see `rlm runs show {run_id}`", file=sys.stderr)
    if as_json:
        error = {"type": type(exc).__name__, "message": str(exc), "hint": remedy}
        data: dict[str, object] = {"error": error, "exit_code": code}
        if isinstance(run_id, str):
            data["run_id"] = run_id
        print(json.dumps(data, ensure_ascii=False))
    return code


def _interrupted(run_id: str | None, as_json: bool) -> int:
    if run_id is None:
        print("rlm: interrupted", file=sys.stderr)
        hint = ""
    else:
        hint = f"continue it with: rlm runs resume {run_id}"
        print(f"rlm: interrupted: run {run_id} is saved; {hint}", file=sys.stderr)
    if as_json:
        error = {"type": "RunInterrupted", "message": "interrupted", "hint": hint}
        data = {"error": error, "run_id": run_id, "exit_code": EXIT_INTERRUPTED}
        print(json.dumps(data, ensure_ascii=False))
    return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())


def _names_no_run(exc: BaseException) -> bool:
    from rlm_engine.cli.store_access import UnknownRunError
    from rlm_engine.store.errors import NotFoundError

    return isinstance(exc, (UnknownRunError, NotFoundError))
