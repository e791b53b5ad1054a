"""How a finished run is reported: its exit status and the lines the user reads.

Exit statuses (the table in the README's CLI section):

====  ==================================================================================
0     an answer: the run stopped with ``final`` or ``submitted`` and a non-empty answer
1     the run failed with an error (provider, sandbox, journal, replay divergence)
2     usage, configuration or input error, found before a run starts
3     stopped without an answer: budget, timeout, max_iterations, stagnation, cancelled
130   interrupted (Ctrl-C, SIGINT, SIGTERM); the run is kept and can be resumed
====  ==================================================================================
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rlm_engine.engine.result import RunResult
    from rlm_engine.errors import ErrorCause

EXIT_ANSWER = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_NO_ANSWER = 3
EXIT_INTERRUPTED = 130

ANSWER_REASONS = frozenset({"final", "submitted"})
# Failures that pass (`run_rules.FailureKind`): nothing of the run is lost, so it is worth
# continuing later.
TRANSIENT_KINDS = frozenset(
    {"connection", "server", "timeout", "rate_limit", "circuit_open", "malformed", "store"}
)

_STOP_HINTS = {
    "max_iterations": "the model used every iteration without a final answer; "
    "raise --max-iterations or ask a narrower question",
    "timeout": "the run hit its time limit; raise --max-seconds",
    "budget": "a run budget is spent; raise --budget-usd, --max-tokens or --max-sub-calls",
    "stagnation": "the model repeated the same step; rephrase the question or try another --model",
    "cancelled": "the run was cancelled before it answered",
}
FORCED_ANSWER_HINT = (
    "the answer above was forced at the iteration limit, not given as final; "
    "raise --max-iterations for a considered one"
)
EMPTY_ANSWER_HINT = (
    "the model's final answer was empty; rephrase the question or try another --model"
)


def has_answer(stop_reason: str, answer: str | None) -> bool:
    """Whether a run ended with a real answer (an empty forced turn is none)."""
    return stop_reason in ANSWER_REASONS and bool((answer or "").strip())


def exit_code(result: RunResult) -> int:
    """The process exit status for a finished run."""
    if has_answer(result.stop_reason, result.answer):
        return EXIT_ANSWER
    if result.stop_reason == "error":
        return EXIT_ERROR
    return EXIT_NO_ANSWER


def stop_hint(
    stop_reason: str,
    detail: str,
    cause: ErrorCause | None = None,
    run_id: str = "",
    failure_kind: str | None = None,
) -> str:
    """What to do after a run that stopped without an answer ("" when there is nothing).

    The cause's type and kind choose the remedy; a stored run, whose exception is gone, has
    the failure kind the store recorded and, failing that, its recorded text."""
    from rlm_engine.remedies import BUDGET_HINTS, detail_hint

    if stop_reason in ANSWER_REASONS:
        return EMPTY_ANSWER_HINT
    if stop_reason in ("budget", "timeout"):
        budget = cause.kind if cause is not None else detail.split(":", 1)[0].strip()
        return BUDGET_HINTS.get(budget, _STOP_HINTS[stop_reason])
    if stop_reason != "error":
        return _STOP_HINTS.get(stop_reason, "")
    from rlm_engine.service.run_records import failure_kind as kind_of

    own = cause.hint if cause is not None else ""
    hint = own or detail_hint(detail, failure_kind)
    # The same classification the store records, so a suggested resume is one it accepts.
    kind = kind_of(cause) if cause is not None else failure_kind
    if kind is None:
        kind = "connection" if _transient(detail) else ""
    if kind in TRANSIENT_KINDS and run_id:
        hint = f"{hint}; then continue it with: rlm runs resume {run_id}"
    return hint


def _transient(detail: str) -> bool:
    return detail.startswith("ProviderError:") and any(
        marker in detail for marker in ("connection failed", "timed out", "(server)")
    )


def result_hint(result: RunResult) -> str:
    """The remedy line for a finished run, "" when it answered."""
    if has_answer(result.stop_reason, result.answer):
        return ""
    if result.stop_reason == "max_iterations" and result.answer.strip():
        return FORCED_ANSWER_HINT
    return stop_hint(result.stop_reason, result.stop_detail, result.cause, result.run_id)


def result_json(result: RunResult) -> dict[str, Any]:
    """The run's JSON object, with its exit status and remedy."""
    data = result.to_dict()
    data["exit_code"] = exit_code(result)
    data["hint"] = result_hint(result)
    return data


def print_result(result: RunResult, as_json: bool) -> None:
    """The answer on stdout; with text output, a summary, the stop detail and a remedy on
    stderr. With ``as_json``, one JSON object carrying the exit status too."""
    if as_json:
        print(json.dumps(result_json(result), ensure_ascii=False, default=str))
        return
    if result.answer:
        print(result.answer)
    cost = "unknown" if result.cost_usd is None else f"${result.cost_usd:.4f}"
    print(
        f"\n[{result.stop_reason} after {result.iterations} iterations, "
        f"{result.usage.total_tokens:,} tokens, {result.sub_calls} sub-calls, cost {cost}, "
        f"{result.duration_s:.1f}s, run {result.run_id}]",
        file=sys.stderr,
    )
    if has_answer(result.stop_reason, result.answer):
        return
    print_stop(result.stop_reason, result.stop_detail, result_hint(result))


def print_stop(stop_reason: str, detail: str, hint: str) -> None:
    """The reason a run gave no answer, and what to do, on stderr."""
    why = detail or "the run stopped without an answer"
    print(f"rlm: {stop_reason}: {why}", file=sys.stderr)
    if hint:
        print(f"rlm: hint: {hint}", file=sys.stderr)
