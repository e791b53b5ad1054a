"""``rlm runs``: list, inspect, export and delete the runs kept in the durable store, and
free the blobs deleted runs leave behind (``resume`` is in ``rlm_engine.cli.resume``).

The export, tree and garbage-collection modules are imported by the commands that use them,
so ``rlm runs list`` loads only the store (of the default SQLite store, only `sqlite3`).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, cast

from rlm_engine.cli.outcome import has_answer, stop_hint
from rlm_engine.cli.store_access import UnknownRunError, cli_store, print_json, require_run
from rlm_engine.errors import ConfigurationError
from rlm_engine.settings import Settings
from rlm_engine.store.records import Run
from rlm_engine.store.sqlite_reads import list_runs_plain, sqlite_path


def run_summary(run: Run) -> dict[str, Any]:
    """What `rlm runs list --json` gives per run."""
    return {
        "run_id": run.run_id,
        "status": run.status,
        "question": run.question,
        "created_at": run.created_at,
        "updated_at": run.updated_at,
        "finished_at": run.finished_at,
        "stop_reason": run.stop_reason,
        "detail": run.detail,
        "answer": run.answer,
        "model": run.model,
        "sub_model": run.sub_model,
        "session": run.session,
        "attempt": run.attempt,
        "failure_kind": run.failure_kind,
        "last_error": run.last_error,
        "engine_version": run.engine_version,
        "settings_version": run.settings_version,
        "totals": asdict(run.totals),
    }


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def _one_line(text: str | None, width: int) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def run_list(args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise ConfigurationError("--limit must be at least 1")
    settings = Settings.from_env()
    runs = None
    if settings.store_url is None:
        # The default SQLite store is read without SQLAlchemy when it can be (the same
        # statement; `sqlite_reads`), else opened in full below.
        path = sqlite_path(settings.home)
        runs = list_runs_plain(path, args.limit, status=args.status, session=args.session)
    if runs is None:
        with cli_store(settings) as store:
            # Cheap, and without it a run whose process was killed would still show
            # "running".
            store.mark_interrupted_runs()
            runs = store.list_runs(args.limit, status=args.status, session=args.session)
    if args.json:
        print_json([run_summary(run) for run in runs])
        return 0
    if not runs:
        print("no runs yet; `rlm ask` records every run", file=sys.stderr)
        return 0
    print(f"{'RUN':<16}  {'CREATED':<19}  {'STATUS':<11} {'STOP':<14} QUESTION")
    for run in runs:
        stop = run.stop_reason or ""
        print(
            f"{run.run_id}  {_when(run.created_at)}  {run.status:<11} {stop:<14} "
            f"{_one_line(run.question, 60)}"
        )
    return 0


def run_show(args: argparse.Namespace) -> int:
    from rlm_engine.store.export import cell_record, event_record

    with cli_store() as store:
        store.mark_interrupted_runs()
        run = require_run(store, args.run_id)
        events = store.list_events(run.run_id)
        cells = store.list_cells(run.run_id)
    if args.json:
        print_json(
            {
                **run_summary(run),
                "settings": run.settings,
                "context_hash": run.context_hash,
                "heartbeat_at": run.heartbeat_at,
                "owner_host": run.owner_host,
                "owner_pid": run.owner_pid,
                "events": [event_record(e) for e in events],
                "cells": [cell_record(c) for c in cells],
                "hint": _run_hint(run),
            }
        )
        return 0
    summary = run_summary(run)
    for key in ("run_id", "status", "stop_reason", "model", "sub_model", "session"):
        print(f"{key}: {summary[key]}")
    print(f"created: {_when(run.created_at)}")
    print(f"question: {run.question}")
    print(f"answer: {run.answer if run.answer else '(none)'}")
    if run.detail:
        print(f"detail: {run.detail}")
    if run.last_error:
        print(f"last resume attempt: {run.last_error}")
    hint = _run_hint(run)
    if hint:
        print(f"hint: {hint}")
    totals = run.totals
    cost = "unknown" if totals.cost_usd is None else f"${totals.cost_usd:.4f}"
    print(
        f"totals: {totals.iterations} iterations, {totals.input_tokens:,} in / "
        f"{totals.output_tokens:,} out tokens, {totals.sub_calls} sub-calls, cost {cost}"
    )
    print(f"events: {len(events)}; cells: {len(cells)}")
    for cell in cells:
        print(f"  {cell.artifact_id}  {cell.status:<9} {_one_line(cell.code, 60)}")
    return 0


def _run_hint(run: Run) -> str:
    """What to do about a run that ended without an answer, from its record."""
    if run.status in ("interrupted", "running"):
        if run.status == "interrupted":
            return f"continue it with: rlm runs resume {run.run_id}"
        return ""
    if run.stop_reason is None or has_answer(run.stop_reason, run.answer):
        return ""
    detail = run.detail or ""
    return stop_hint(run.stop_reason, detail, run_id=run.run_id, failure_kind=run.failure_kind)


def run_tree(args: argparse.Namespace) -> int:
    from rlm_engine.store.export_tree import build_tree, render_tree

    with cli_store() as store:
        store.mark_interrupted_runs()
        require_run(store, args.run_id)
        tree = store.run_tree(args.run_id)
        if tree is None:  # deleted since the lookup above
            raise UnknownRunError(args.run_id)
        events = store.list_events(args.run_id)
    root = build_tree(tree, events)
    if args.json:
        print_json(root.to_dict())
    else:
        print("\n".join(render_tree(root)))
    return 0


def run_export(args: argparse.Namespace) -> int:
    from rlm_engine.store.export import export_run

    if args.output != "-":
        check_export_path(Path(args.output).expanduser())
    with cli_store() as store:
        require_run(store, args.run_id)
        text = export_run(store, args.run_id, cast(str, args.fmt))
    if args.output == "-":
        sys.stdout.write(text)
        return 0
    path = Path(args.output).expanduser()
    write_export(path, text)
    print(f"wrote {path} ({args.fmt})", file=sys.stderr)
    return 0


class ExportPathError(ConfigurationError):
    """An export target that cannot be written (exit status 2); nothing is created."""

    def __init__(self, path: Path, why: str) -> None:
        super().__init__(
            f"cannot export to {str(path)!r}: {why}",
            hint="give -o a file in an existing, writable directory (or '-' for stdout)",
        )
        self.path = path


def check_export_path(path: Path) -> None:
    """Refuse, before any work, a target that is a directory or whose directory is missing
    or unwritable; parents are never created, so a typo cannot scatter directories."""
    if path.is_dir():
        raise ExportPathError(path, "it is a directory")
    parent = path.parent
    if not parent.is_dir():
        why = "is not a directory" if parent.exists() else "does not exist"
        raise ExportPathError(path, f"its directory {str(parent)!r} {why}")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise ExportPathError(path, "permission denied")


def write_export(path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:  # the checks above can race, and root-only mounts can refuse
        raise ExportPathError(path, exc.strerror or str(exc)) from exc


def _confirmed(run: Run) -> bool:
    if not sys.stdin.isatty():
        raise ConfigurationError(
            f"refusing to delete run {run.run_id} without confirmation; pass --yes"
        )
    reply = input(f"delete run {run.run_id} ({_one_line(run.question, 50)})? [y/N] ")
    return reply.strip().lower() in ("y", "yes")


def run_delete(args: argparse.Namespace) -> int:
    with cli_store() as store:
        store.mark_interrupted_runs()
        run = require_run(store, args.run_id)
        if run.status == "running":
            raise ConfigurationError(
                f"run {run.run_id} is still running (pid {run.owner_pid} on {run.owner_host}); "
                "stop it first, or wait until `rlm runs list` shows it interrupted"
            )
        if not args.yes and not _confirmed(run):
            print("not deleted", file=sys.stderr)
            return 1
        deleted = store.delete_run(run.run_id)
    if args.json:
        print_json({"run_id": run.run_id, "deleted": deleted})
    else:
        print(f"deleted run {run.run_id}")
    return 0


def run_gc(args: argparse.Namespace) -> int:
    from rlm_engine.store.gc import collect_garbage

    hours: float = args.grace_hours
    if hours < 0:
        raise ConfigurationError("--grace-hours must not be negative")
    with cli_store() as store:
        report = collect_garbage(store, grace_s=hours * 3600)
    if args.json:
        print_json(asdict(report))
    else:
        print(
            f"removed {report.blobs_removed} blobs ({report.bytes_freed:,} bytes) and "
            f"{report.contexts_removed} contexts; kept {report.blobs_kept} blobs"
        )
    return 0
