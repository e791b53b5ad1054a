"""``rlm sessions``: the named sessions that ``rlm ask --session NAME`` continues."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from rlm_engine.cli.runs import run_summary
from rlm_engine.cli.store_access import UnknownSessionError, cli_store, print_json
from rlm_engine.errors import ConfigurationError
from rlm_engine.store.records import MemoryScope, Session

SESSION_RUNS_SHOWN = 50


def session_summary(session: Session) -> dict[str, Any]:
    """What `rlm sessions list --json` gives per session."""
    return {
        "name": session.name,
        "version": session.version,
        "created_at": session.created_at,
        "updated_at": session.updated_at,
    }


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def sessions_list(args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise ConfigurationError("--limit must be at least 1")
    with cli_store() as store:
        sessions = store.list_sessions(args.limit)
    if args.json:
        print_json([session_summary(s) for s in sessions])
        return 0
    if not sessions:
        print("no sessions yet; `rlm ask --session NAME` starts one", file=sys.stderr)
    for s in sessions:
        print(f"{s.name:<24} v{s.version:<4} updated {_when(s.updated_at)}")
    return 0


def sessions_show(args: argparse.Namespace) -> int:
    with cli_store() as store:
        session = store.get_session(args.name)
        if session is None:
            raise UnknownSessionError(args.name)
        store.mark_interrupted_runs()
        runs = store.list_runs(SESSION_RUNS_SHOWN, session=session.name)
        memory = store.memory_list(MemoryScope.session(session.name))
    if args.json:
        print_json(
            {
                **session_summary(session),
                "data": session.data,
                "memory": {item.key: item.value for item in memory},
                "runs": [run_summary(run) for run in runs],
            }
        )
        return 0
    print(f"session: {session.name} (version {session.version})")
    print(f"created: {_when(session.created_at)}; updated: {_when(session.updated_at)}")
    print(f"memory keys: {', '.join(item.key for item in memory) or '(none)'}")
    print(f"runs ({len(runs)}, newest first):")
    for run in runs:
        # Each question of a session may use other models: say which answered it.
        question = " ".join(run.question.split())[:60]
        print(f"  {run.run_id}  {run.status:<11} {run.model:<24} {question}")
    return 0


def sessions_delete(args: argparse.Namespace) -> int:
    with cli_store() as store:
        deleted = store.delete_session(args.name)
    if not deleted:
        raise UnknownSessionError(args.name)
    if args.json:
        print_json({"name": args.name, "deleted": True})
    else:
        print(f"deleted session {args.name} and its memory; its runs remain")
    return 0
