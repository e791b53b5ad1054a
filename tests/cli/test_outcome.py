"""Exit statuses and remedies of finished runs (`rlm_engine.cli.outcome`), and the engine's
forced final turn that gives no answer."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest

from rlm_engine import RLM
from rlm_engine.cli.outcome import (
    EXIT_ANSWER,
    EXIT_ERROR,
    EXIT_NO_ANSWER,
    exit_code,
    print_result,
    stop_hint,
)
from rlm_engine.engine.result import RunResult
from rlm_engine.engine.tree import CallNode
from rlm_engine.errors import BudgetExceeded, ErrorCause, ProviderError, hint_for
from rlm_engine.lm.scripted import ScriptedModel
from rlm_engine.remedies import detail_hint
from rlm_engine.types import Message, Usage


def result(stop_reason: str, answer: str = "", **kw: object) -> RunResult:
    return RunResult(
        answer=answer,
        run_id="r1",
        stop_reason=stop_reason,  # type: ignore[arg-type]
        iterations=2,
        usage=Usage(),
        cost_usd=None,
        duration_s=0.1,
        tree=CallNode(id="run", kind="run"),
        **kw,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("stop_reason", "answer", "code"),
    [
        ("final", "42", EXIT_ANSWER),
        ("submitted", '{"a": 1}', EXIT_ANSWER),
        ("final", "  ", EXIT_NO_ANSWER),
        ("max_iterations", "a forced guess", EXIT_NO_ANSWER),
        ("max_iterations", "", EXIT_NO_ANSWER),
        ("budget", "", EXIT_NO_ANSWER),
        ("timeout", "", EXIT_NO_ANSWER),
        ("stagnation", "", EXIT_NO_ANSWER),
        ("error", "", EXIT_ERROR),
    ],
)
def test_only_a_real_answer_exits_zero(stop_reason: str, answer: str, code: int) -> None:
    assert exit_code(result(stop_reason, answer)) == code


def test_the_remedy_follows_the_errors_kind_not_its_wording() -> None:
    down = ProviderError("whatever the SDK said", kind="connection", provider="ollama")
    refused = ProviderError("whatever the SDK said", kind="auth", provider="anthropic")
    assert "ollama serve" in hint_for(down) and "OLLAMA_BASE_URL" in hint_for(down)
    assert "ANTHROPIC_API_KEY" in hint_for(refused)
    cause = ErrorCause.of(down)
    assert (cause.type, cause.kind) == ("ProviderError", "connection")
    hint = stop_hint("error", "ProviderError: whatever", cause, run_id="r1")
    assert "ollama serve" in hint and "rlm runs resume r1" in hint


def test_a_permanent_failure_does_not_suggest_resuming() -> None:
    cause = ErrorCause.of(ProviderError("no", kind="auth", provider="openai"))
    hint = stop_hint("error", "ProviderError: no", cause, run_id="r1")
    assert "OPENAI_API_KEY" in hint and "resume" not in hint


def test_a_spent_budget_names_its_flag() -> None:
    cause = ErrorCause.of(BudgetExceeded("sub_calls", "sub-call budget of 3 spent"))
    assert stop_hint("budget", "sub_calls: ...", cause) == "raise --max-sub-calls"
    assert stop_hint("timeout", "time: time budget of 5s spent") == "raise --max-seconds"


@pytest.mark.parametrize(
    ("detail", "expected"),
    [
        ("ProviderError: openai: HTTP 500 (server): boom", "wait for it to recover"),
        ("ProviderError: ollama: connection failed: refused", "ollama serve"),
        ("ProviderError: openai: malformed response: no choices", "OpenAI-compatible"),
        ("NondeterminismError: the request differs", "rlm ask"),
    ],
)
def test_a_stored_run_gets_its_remedy_from_the_recorded_text(detail: str, expected: str) -> None:
    assert expected in detail_hint(detail)


def test_text_output_says_why_and_what_to_do(capsys: pytest.CaptureFixture[str]) -> None:
    cause = ErrorCause.of(ProviderError("x", kind="server", provider="openai"))
    print_result(result("error", stop_detail="ProviderError: HTTP 500", cause=cause), False)
    err = capsys.readouterr().err
    assert "rlm: error: ProviderError: HTTP 500" in err
    assert "rlm: hint: " in err and "rlm runs resume r1" in err


def test_json_output_carries_the_exit_code_and_hint(capsys: pytest.CaptureFixture[str]) -> None:
    print_result(result("max_iterations", stop_detail="no FINAL"), True)
    data = json.loads(capsys.readouterr().out)
    assert data["exit_code"] == EXIT_NO_ANSWER
    assert "--max-iterations" in data["hint"]
    answered = result("final", "42")
    print_result(answered, True)
    data = json.loads(capsys.readouterr().out)
    assert (data["exit_code"], data["hint"], data["cause"]) == (EXIT_ANSWER, "", None)


def forced(final_turn: str) -> ScriptedModel:
    def policy(messages: Sequence[Message]) -> str:
        if "You have used every iteration" in messages[-1].content:
            return final_turn
        return "```repl\nx = 1\nprint(x)\n```"

    return ScriptedModel(policy)


@pytest.mark.parametrize(
    ("final_turn", "why"),
    [
        ('FINAL_VAR("answer")', "gave no answer"),
        ("FINAL()", "gave no answer"),
        ("I could not finish in time.", "no FINAL"),
    ],
)
def test_a_forced_final_turn_without_a_real_answer_is_no_answer(final_turn: str, why: str) -> None:
    with RLM(forced(final_turn), max_iterations=1) as rlm:
        run = rlm.run("question")
    assert (run.stop_reason, run.answer) == ("max_iterations", "")
    assert why in run.stop_detail
    assert exit_code(run) == EXIT_NO_ANSWER


def test_a_forced_final_turn_with_an_answer_keeps_it_but_is_not_final() -> None:
    with RLM(forced("FINAL_VAR('x')"), max_iterations=1) as rlm:
        run = rlm.run("question")
    assert (run.stop_reason, run.answer, run.stop_detail) == (
        "max_iterations",
        "1",
        "forced final answer",
    )


def test_a_divergence_says_how_to_go_on() -> None:
    from rlm_engine.engine.journal import NondeterminismError

    cause = ErrorCause.of(NondeterminismError("cell 3 printed something else"))
    assert "--accept-divergence" in cause.hint and "rlm ask" in cause.hint


@pytest.mark.parametrize(
    ("status", "stop", "detail", "kind", "shown"),
    [
        (
            "failed",
            "error",
            "ProviderError: ollama: connection failed: refused",
            "connection",
            ("ollama serve", "rlm runs resume r-show"),
        ),
        ("completed", "budget", "cost: cost budget of $0.01 spent", None, ("--budget-usd",)),
        ("interrupted", "interrupted", "stopped", None, ("rlm runs resume r-show",)),
    ],
)
def test_runs_show_prints_the_detail_and_the_remedy(
    status: str,
    stop: str,
    detail: str,
    kind: str | None,
    shown: tuple[str, ...],
    capsys: pytest.CaptureFixture[str],
) -> None:
    from rlm_engine.cli.main import main
    from rlm_engine.cli.store_access import cli_store
    from rlm_engine.store.records import NewRun

    with cli_store() as store:
        store.create_run(NewRun(run_id="r-show", question="q"))
        store.finish_run(
            "r-show",
            status=status,  # type: ignore[arg-type]
            stop_reason=stop,
            detail=detail,
            failure_kind=kind,
        )
    assert main(["runs", "show", "r-show"]) == 0
    out = capsys.readouterr().out
    assert f"detail: {detail}" in out
    hint = next(line for line in out.splitlines() if line.startswith("hint: "))
    for text in shown:
        assert text in hint
