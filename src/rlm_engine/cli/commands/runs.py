"""``rlm runs``: its arguments (the implementation is `rlm_engine.cli.runs`, and
`rlm_engine.cli.resume` for ``rlm runs resume``)."""

from __future__ import annotations

import argparse
from typing import Any

from rlm_engine.cli.commands import handler
from rlm_engine.cli.commands.resume import register_resume
from rlm_engine.store.export_formats import EXPORT_FORMATS

# `rlm_engine.store.records.RunStatus`, spelled out so that parsing imports no store module
# (a test checks that the two agree).
RUN_STATUSES: tuple[str, ...] = (
    "queued",
    "running",
    "completed",
    "failed",
    "interrupted",
    "cancelled",
)


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "runs", help="list, inspect, export, resume and delete recorded runs"
    )
    sub = p.add_subparsers(dest="runs_command", metavar="ACTION", required=True)

    lst = sub.add_parser("list", help="runs, newest first")
    lst.add_argument("--json", action="store_true", help="print a JSON list")
    lst.add_argument("--limit", type=int, default=50, metavar="N", help="show at most N runs")
    lst.add_argument("--status", choices=RUN_STATUSES, help="only runs with this status")
    lst.add_argument("--session", metavar="NAME", help="only runs of this session")
    lst.set_defaults(handler=handler("rlm_engine.cli.runs:run_list"))

    show = sub.add_parser("show", help="one run with its events and cells")
    show.add_argument("run_id", help="the run's id (`rlm runs list` shows them)")
    show.add_argument("--json", action="store_true", help="print one JSON object")
    show.set_defaults(handler=handler("rlm_engine.cli.runs:run_show"))

    tree = sub.add_parser("tree", help="a run's call tree: turns, cells, sub-calls")
    tree.add_argument("run_id", help="the run's id (`rlm runs list` shows them)")
    tree.add_argument("--json", action="store_true", help="print the tree as JSON")
    tree.set_defaults(handler=handler("rlm_engine.cli.runs:run_tree"))

    export = sub.add_parser("export", help="write a run as a notebook, JSONL or Markdown")
    export.add_argument("run_id", help="the run's id (`rlm runs list` shows them)")
    export.add_argument(
        "--format", choices=EXPORT_FORMATS, required=True, dest="fmt", help="what to write"
    )
    export.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="FILE",
        help="the file to write, in an existing directory ('-': stdout)",
    )
    export.set_defaults(handler=handler("rlm_engine.cli.runs:run_export"))

    delete = sub.add_parser(
        "delete", help="delete a run with its journal and events (`rlm runs gc` frees blobs)"
    )
    delete.add_argument("run_id", help="the run's id (`rlm runs list` shows them)")
    delete.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    delete.add_argument("--json", action="store_true", help="print one JSON object")
    delete.set_defaults(handler=handler("rlm_engine.cli.runs:run_delete"))

    gc = sub.add_parser(
        "gc", help="free stored blobs and pinned contexts that no run refers to any more"
    )
    gc.add_argument(
        "--grace-hours",
        type=float,
        default=1.0,
        metavar="H",
        help="keep anything stored in the last H hours (default 1: runs in flight)",
    )
    gc.add_argument("--json", action="store_true", help="print one JSON object")
    gc.set_defaults(handler=handler("rlm_engine.cli.runs:run_gc"))

    register_resume(sub)
