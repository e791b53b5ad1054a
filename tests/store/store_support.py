"""Helpers shared by the store contract tests."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from rlm_engine.store import NewRun, SqlStore


def new_run(
    store: SqlStore,
    run_id: str = "run-1",
    *,
    session: str | None = None,
    created_at: float | None = None,
) -> str:
    store.create_run(
        NewRun(
            run_id=run_id,
            question=f"question of {run_id}",
            session=session,
            created_at=created_at,
        )
    )
    return run_id


def python(code: str, *args: str) -> subprocess.Popen[str]:
    """Start a fresh interpreter running `code` (with `sys.argv[1:] == args`)."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
