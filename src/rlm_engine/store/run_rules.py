"""A run's statuses, why a failed run failed, and which runs can be resumed.

Transitions (docs/resume.md has the same as a table):

- `create_run`: -> running (owned by this process), or -> queued (`NewRun.queued`: no
  owner, no heartbeat; `mark_interrupted_runs` leaves it alone).
- `claim_next` (the queue): queued -> running, or interrupted with `auto_resume` (and no
  cancel requested) -> running, attempt + 1. Cancelled runs are never claimed by it.
- the run ends: running -> completed (an answer, or a stop without one: budget, timeout,
  max_iterations, stagnation), failed (an error; `failure_kind` says which) or cancelled
  (its owner saw `cancel_requested`).
- `request_cancel`: queued or interrupted -> cancelled at once; running -> running with
  `cancel_requested` (its owner stops it); terminal runs stay as they are.
- its process dies or is interrupted: running -> interrupted (`mark_interrupted_runs`, or
  the CLI on Ctrl-C); -> cancelled instead if a cancel was requested.
- `claim_run` (an explicit resume): interrupted, cancelled, or failed for a reason that can
  pass -> running, attempt + 1, cancel request cleared. Completed runs, runs failed for a
  permanent reason and queued runs are refused.
- a resume attempt that fails for a reason that is not permanent puts the run back as it
  was before the attempt (status, stop reason, detail, kind) with the attempt's error in
  `last_error`: the journal keeps whatever the attempt added, and a later resume goes on.
"""

from __future__ import annotations

from typing import Literal

from rlm_engine.errors import ProviderErrorKind

FailureKind = (
    ProviderErrorKind
    | Literal["divergence", "store", "sandbox", "context", "interrupted", "unknown"]
)
"""A provider error's kind, or: the replay of the journal diverged; the store failed (disk
full, database down); the sandbox failed; the context could not be read; the run was
interrupted while resuming; anything else."""

INTERRUPTED_DETAIL = "the process running it stopped before the run finished"
CANCELLED_DETAIL = "cancelled on request"

PERMANENT_FAILURES: frozenset[str] = frozenset(
    {"bad_request", "not_found", "context_length", "content_filter"}
)
"""The provider refused the request itself: the journal fixes the model and the request, so
a resume would send the same request and be refused again."""


def resume_refusal(run_id: str, status: str, failure_kind: str | None) -> tuple[str, str] | None:
    """Why a run in `status` (failed with `failure_kind`) cannot be resumed, and what to do
    instead; None if it can be. Liveness of a running run's owner is checked by the store."""
    if status == "completed":
        return (
            f"run {run_id!r} is completed; a completed run is never resumed",
            f"ask the question again with `rlm ask`, or re-run it offline: rlm replay {run_id}",
        )
    if status == "queued":
        return (
            f"run {run_id!r} is queued and has not started; a queued run is started by the "
            "queue, never resumed",
            "wait for a server process to start it, or cancel it",
        )
    if status == "failed" and failure_kind in PERMANENT_FAILURES:
        return (
            f"run {run_id!r} failed because the provider refused its request "
            f"({failure_kind}); a resume would send the same request again, so it is refused",
            "ask the question again with `rlm ask`, changing what the error names "
            "(the model, the context's size, the settings); `rlm runs show "
            f"{run_id}` prints the error",
        )
    return None


def is_resumable(status: str, failure_kind: str | None) -> bool:
    """Whether a run that is not running can be claimed for resume (queued: never)."""
    return status != "running" and resume_refusal("", status, failure_kind) is None
