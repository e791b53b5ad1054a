"""Generators: deterministic per seed, sized as asked, carrying consistent ground truth."""

from __future__ import annotations

import pytest

from rlm_engine.bench import gen_pairs
from rlm_engine.bench.oolong_data import LABELS
from rlm_engine.bench.sizes import format_size, parse_size, parse_sizes
from rlm_engine.bench.suites import SUITES, parse_suites
from rlm_engine.errors import ConfigurationError

SIZE = 4096


@pytest.mark.parametrize("name", list(SUITES))
def test_same_seed_same_task_other_seed_other_task(name: str) -> None:
    suite = SUITES[name]
    first, again = suite.generate(SIZE, 1, 7), suite.generate(SIZE, 1, 7)
    assert first == again
    other = suite.generate(SIZE, 1, 8)
    assert other.context != first.context
    assert first.id != other.id


@pytest.mark.parametrize("name", list(SUITES))
def test_size_is_close_to_the_request(name: str) -> None:
    for size in (SIZE, 4 * SIZE):
        task = SUITES[name].generate(size, 0, 0)
        assert 0.8 * size * 4 <= task.context_chars <= 1.3 * size * 4, task.context_chars


def test_sniah_holds_one_needle_with_the_gold_value() -> None:
    task = SUITES["sniah"].generate(SIZE, 0, 0)
    assert isinstance(task.context, str)
    assert task.context.count("special magic") == 1
    (fact,) = task.facts
    assert fact.evidence in task.context and fact.answer == task.answer


def test_sniah_spreads_needle_depth_and_kinds() -> None:
    tasks = [SUITES["sniah"].generate(SIZE, i, 0) for i in range(8)]
    assert {t.meta["value_kind"] for t in tasks} == {"number", "uuid"}
    assert {t.meta["haystack"] for t in tasks} == {"noise", "essay"}
    assert len({t.meta["depth"] for t in tasks}) == 8


def test_oolong_lines_are_labelled_and_answers_formatted() -> None:
    for index in range(6):
        task = SUITES["oolong"].generate(SIZE, index, 0)
        assert isinstance(task.context, str)
        lines = [line for line in task.context.splitlines() if line.startswith("Date: ")]
        questions = {line.split(" || Instance: ")[1] for line in lines}
        assert questions == set(task.labels)
        assert set(task.labels.values()) <= set(LABELS)
        assert task.answer.split(":")[0] in ("Label", "User", "Date", "Answer")


def test_pairs_cover_the_twenty_queries() -> None:
    assert len(gen_pairs.QUERIES) == 20
    questions = {SUITES["oolong-pairs"].generate(SIZE, i, 0).question for i in range(20)}
    assert len(questions) == 20


def test_codeqa_and_multidoc_truth_is_in_the_context() -> None:
    code = SUITES["codeqa"].generate(SIZE, 0, 0)
    assert isinstance(code.context, dict) and code.answer in "ABCD"
    assert any(code.facts[0].evidence in source for source in code.context.values())
    docs = SUITES["multidoc"].generate(SIZE, 0, 0)
    assert isinstance(docs.context, list) and len(docs.facts) == 3
    for fact in docs.facts:
        assert sum(fact.evidence in doc for doc in docs.context) == 1


def test_sizes_and_suite_names() -> None:
    assert parse_size("16k") == 16_384 and parse_size("1m") == 1_048_576
    assert parse_sizes("16k, 128k,16k") == [16_384, 131_072]
    assert format_size(131_072) == "128k" and format_size(1_048_576) == "1m"
    with pytest.raises(ConfigurationError):
        parse_size("12q")
    assert [s.name for s in parse_suites("all")] == list(SUITES)
    with pytest.raises(ConfigurationError, match="nope"):
        parse_suites("sniah,nope")
