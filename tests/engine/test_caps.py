"""Default caps on sub-calls, prompt sizes and answers (scripted models, real broker)."""

from __future__ import annotations

import tracemalloc
from collections.abc import Sequence
from pathlib import Path

import pytest

from rlm_engine import RLM
from rlm_engine.cli.ask import spec_from_args
from rlm_engine.cli.main import build_parser
from rlm_engine.engine.budgets import Budget, Limits
from rlm_engine.engine.caps import CapExceeded, answer_refusal, check_prompt, utf8_size
from rlm_engine.engine.config import DEFAULT_MAX_SUB_CALLS, RLMConfig
from rlm_engine.errors import BudgetExceeded, ConfigurationError
from rlm_engine.lm.context_windows import context_window_tokens
from rlm_engine.lm.scripted import ScriptedModel
from rlm_engine.settings import Settings
from rlm_engine.store import CellStart, NewRun, open_store
from rlm_engine.types import Message


def fence(code: str) -> str:
    return f"```repl\n{code}\n```"


def turns(*replies: str) -> ScriptedModel:
    return ScriptedModel(
        lambda m: replies[min(sum(x.role == "assistant" for x in m), len(replies) - 1)]
    )


def counting_sub() -> tuple[ScriptedModel, list[Sequence[Message]]]:
    seen: list[Sequence[Message]] = []

    def reply(messages: Sequence[Message]) -> str:
        seen.append(messages)
        return "ok"

    return ScriptedModel(reply), seen


def test_defaults_are_finite_and_validated() -> None:
    config = RLMConfig()
    assert config.max_sub_calls == DEFAULT_MAX_SUB_CALLS == 10_000
    assert config.max_prompt_bytes == 8 * 1024 * 1024
    assert config.max_answer_bytes == 1024 * 1024
    with pytest.raises(ConfigurationError, match="max_prompt_bytes must be >= 1024"):
        RLMConfig(max_prompt_bytes=10)
    with pytest.raises(ConfigurationError, match="max_answer_bytes must be >= 1024"):
        RLMConfig(max_answer_bytes=0)


def test_a_batch_reservation_is_all_or_nothing() -> None:
    budget = Budget(Limits(max_sub_calls=10))
    budget.take_sub_calls(4)
    with pytest.raises(BudgetExceeded, match="batch of 7 sub-calls was refused") as caught:
        budget.take_sub_calls(7)
    assert caught.value.budget == "sub_calls"
    assert budget.sub_calls == 4 and budget.sub_calls_left() == 6
    budget.take_sub_calls(6)
    assert budget.sub_calls_left() == 0


def test_utf8_size_is_exact_under_the_cap_and_a_bound_above() -> None:
    assert utf8_size("héllo", 100) == 6
    assert utf8_size("\udcff", 100) == 3  # a lone surrogate is counted, not an error
    assert utf8_size("é" * 50, 10) == 50  # over the cap by length alone: never encoded


def test_check_prompt_names_the_cap_and_says_to_chunk() -> None:
    with pytest.raises(CapExceeded, match="Split the text into chunks") as caught:
        check_prompt("x" * 5000, max_bytes=4096, window_tokens=None, what="llm_query")
    assert caught.value.cap == "max_prompt_bytes"
    with pytest.raises(CapExceeded, match="window of 100") as caught:
        check_prompt("x" * 1000, max_bytes=4096, window_tokens=100, what="llm_query")
    assert caught.value.cap == "sub_context_tokens"
    check_prompt("x" * 400, max_bytes=4096, window_tokens=100, what="llm_query")


def test_context_windows_come_from_the_catalogue() -> None:
    window = context_window_tokens("openai/gpt-4o-mini")
    assert window is not None and window >= 100_000
    assert context_window_tokens("scripted/anything") is None
    assert context_window_tokens("not a model") is None


def test_a_batch_larger_than_what_is_left_is_refused_before_any_call() -> None:
    sub, seen = counting_sub()
    root = turns(
        fence("print(llm_query('one'))"),
        fence(
            "try:\n    llm_query_batched(['p'] * 5)\nexcept RuntimeError as e:\n"
            "    print('REFUSED', e)"
        ),
        "FINAL(done)",
    )
    with RLM(root, sub, max_sub_calls=4) as rlm:
        result = rlm.run("question")
    assert len(seen) == 1  # only the single call of the first cell reached the model
    feedback = root.calls[2][-1].content
    assert "REFUSED" in feedback and "only 3 of the run's 4 are left" in feedback
    assert result.answer == "done" and result.sub_calls == 1


def test_an_oversized_prompt_is_refused_in_the_cell() -> None:
    sub, seen = counting_sub()
    root = turns(
        fence(
            "for q in ['x' * 5000, 'y' * 100]:\n    try:\n        print(llm_query(q))\n"
            "    except RuntimeError as e:\n        print('REFUSED', e)"
        ),
        "FINAL(done)",
    )
    with RLM(root, sub, max_prompt_bytes=4096) as rlm:
        rlm.run("question")
    assert [m[-1].content for m in seen] == ["y" * 100]
    feedback = root.calls[1][-1].content
    assert "REFUSED llm_query failed: CapExceeded" in feedback
    assert "above the cap of 4,096 bytes" in feedback


def test_one_oversized_prompt_refuses_its_whole_batch() -> None:
    sub, seen = counting_sub()
    root = turns(
        fence(
            "try:\n    llm_query_batched(['short', 'z' * 2000])\nexcept RuntimeError as e:\n"
            "    print('REFUSED', e)"
        ),
        "FINAL(done)",
    )
    with RLM(root, sub, sub_context_tokens=100) as rlm:
        result = rlm.run("question")
    assert seen == []
    assert "prompts[1]" in root.calls[1][-1].content
    assert "window of 100" in root.calls[1][-1].content
    assert result.sub_calls == 0


def test_an_oversized_final_is_refused_and_the_root_asked_again() -> None:
    root = turns(
        fence("FINAL('a' * 5000)"),
        fence("SUBMIT(text='b' * 5000)"),
        fence("FINAL('short')"),
    )
    with RLM(root, max_answer_bytes=4096) as rlm:
        result = rlm.run("question")
    assert result.answer == "short"
    assert "FINAL(...) was refused" in root.calls[1][-1].content
    assert "SUBMIT(...) was refused" in root.calls[2][-1].content


def test_answer_refusal_counts_bytes_not_characters() -> None:
    assert answer_refusal("final", "é" * 600, 1024) is not None
    assert answer_refusal("final", "e" * 600, 1024) is None


def test_refusing_a_150mb_prompt_copies_none_of_it() -> None:
    big = "é" * 150_000_000
    tracemalloc.start()
    try:
        with pytest.raises(CapExceeded):
            check_prompt(big, max_bytes=8 * 1024 * 1024, window_tokens=None, what="llm_query")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000


def test_a_long_final_is_journaled_as_a_blob(tmp_path: Path) -> None:
    store = open_store(None, tmp_path / "home")
    try:
        store.create_run(NewRun(run_id="run-1", question="q"))
        start = CellStart("run-1", "", 1, 0, "FINAL('a' * 3_000_000)")
        store.begin_cell(start)
        answer = "a" * 3_000_000
        meta = {"final": {"kind": "final", "answer": answer, "fields": None}}
        done = store.finish_cell(start.key, status="completed", output="", meta=meta)
        assert done.meta["final"] == meta["final"]
        assert store.finish_cell(start.key, status="completed", output="", meta=meta) == done
        db = tmp_path / "home"
        files = [p for p in db.glob("rlm.db*") if p.is_file()]  # with its write-ahead log
        assert files and sum(p.stat().st_size for p in files) < 1_000_000
        assert store.get_cell(start.key) == done
    finally:
        store.close()


def test_the_cap_flags_reach_the_rebuilt_rlm() -> None:
    args = build_parser("ask").parse_args(
        ["ask", "q", "--model", "scripted/x", "--max-prompt-bytes", "2048"]
        + ["--sub-context-tokens", "100", "--max-answer-bytes", "4096"]
    )
    config = spec_from_args(args, Settings.from_env({})).config()
    assert RLMConfig(**config) == RLMConfig(
        max_prompt_bytes=2048, sub_context_tokens=100, max_answer_bytes=4096
    )
    with pytest.raises(SystemExit):
        build_parser("ask").parse_args(["ask", "q", "--max-answer-bytes", "10"])
