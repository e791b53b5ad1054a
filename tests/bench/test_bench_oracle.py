"""The oracle policy answers from registered ground truth and nothing else."""

from __future__ import annotations

from rlm_engine.bench.suites import SUITES
from rlm_engine.bench.task import direct_prompt, register_with_oracle
from rlm_engine.sim.oracle import INSPECT_CODE, ROOT_PROMPT_START, OraclePolicy
from rlm_engine.sim.oracle_protocol import CLASSIFY_PROMPT, FACT_PROMPT, NOT_FOUND
from rlm_engine.sim.oracle_registry import OracleRegistry, context_fingerprint


def _user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def test_fact_needs_the_evidence_in_the_text() -> None:
    registry = OracleRegistry()
    task = SUITES["sniah"].generate(2048, 0, 0)
    register_with_oracle(task, registry)
    oracle = OraclePolicy(registry)
    (fact,) = task.facts
    with_needle = FACT_PROMPT.format(question=fact.question, text=f"noise\n{fact.evidence}\n")
    without = FACT_PROMPT.format(question=fact.question, text="noise only\n")
    assert oracle("m", [_user(with_needle)]) == task.answer
    assert oracle("m", [_user(without)]) == NOT_FOUND
    unknown = FACT_PROMPT.format(question="What is unknown?", text=fact.evidence)
    assert oracle("m", [_user(unknown)]) == NOT_FOUND


def test_classify_answers_registered_labels() -> None:
    registry = OracleRegistry()
    task = SUITES["oolong"].generate(2048, 0, 0)
    register_with_oracle(task, registry)
    (first, label), *_ = task.labels.items()
    prompt = CLASSIFY_PROMPT.format(categories="a, b", items=f"1. {first}\n2. never seen?\n")
    assert OraclePolicy(registry)("m", [_user(prompt)]) == f"1: {label}\n2: unknown"


def test_root_inspects_then_sends_the_solution_then_gives_up() -> None:
    registry = OracleRegistry()
    task = SUITES["codeqa"].generate(2048, 0, 0)
    register_with_oracle(task, registry)
    oracle = OraclePolicy(registry)
    system = {"role": "system", "content": ROOT_PROMPT_START + " ..."}
    messages = [system, _user("Question: ...")]
    assert INSPECT_CODE in oracle("m", messages)
    output = f"dict 3\ncontext fingerprint: {context_fingerprint(task.context)}\n"
    messages += [{"role": "assistant", "content": "..."}, _user(output)]
    assert task.solution.strip() in oracle("m", messages)
    messages += [{"role": "assistant", "content": "..."}, _user("Traceback ...")]
    assert oracle("m", messages).startswith("FINAL(oracle: the solution cell did not finish")


def test_root_with_unknown_context_says_so() -> None:
    oracle = OraclePolicy(OracleRegistry())
    messages = [
        {"role": "system", "content": ROOT_PROMPT_START},
        _user("Question: ?"),
        {"role": "assistant", "content": "..."},
        _user("context fingerprint: " + "0" * 64),
    ]
    assert "unknown task" in oracle("m", messages)


def test_direct_prompt_gets_the_gold_answer() -> None:
    registry = OracleRegistry()
    task = SUITES["multidoc"].generate(2048, 0, 0)
    register_with_oracle(task, registry)
    oracle = OraclePolicy(registry)
    assert oracle("m", [_user(direct_prompt(task))]) == task.answer
    assert oracle("m", [_user(direct_prompt(task) + " ")]) == "oracle: unknown request"
