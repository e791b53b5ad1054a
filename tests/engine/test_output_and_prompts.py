from rlm_engine.engine import prompts
from rlm_engine.engine.output import truncate_middle
from rlm_engine.sandbox.base import ContextMeta


def test_truncate_keeps_head_and_tail_with_a_marker() -> None:
    text = "A" * 5000 + "B" * 5000
    out = truncate_middle(text, 1000)
    assert out.startswith("A" * 600)
    assert out.endswith("B" * 400)
    assert "9,000 characters omitted" in out
    assert truncate_middle("short", 1000) == "short"


def test_context_description_never_includes_the_body() -> None:
    meta = ContextMeta(
        type="str", total_chars=20_000_000, chunk_lengths=(), preview="first line", files=1
    )
    text = prompts.describe_context(meta)
    assert "20,000,000" in text and "first line" in text
    assert len(text) < 500


def test_system_prompt_is_stable_and_mentions_the_helpers() -> None:
    kwargs = dict(
        max_output_chars=20_000, max_concurrency=32, can_recurse=False, has_schema=False, tools=()
    )
    a = prompts.system_prompt(**kwargs)  # type: ignore[arg-type]
    b = prompts.system_prompt(**kwargs)  # type: ignore[arg-type]
    assert a == b
    for name in ("llm_query_batched", "rlm_query", "FINAL_VAR", "SUBMIT", "SHOW_VARS", "```repl"):
        assert name in a


def test_feedback_restates_the_question() -> None:
    text = prompts.turn_feedback(["out1", "out2"], "what is x?", "sub-calls used 0", 2, None)
    assert "[cell 1 output]\nout1" in text and "[cell 2 output]\nout2" in text
    assert text.rstrip().endswith("Remember the question: what is x?")
