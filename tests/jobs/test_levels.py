"""The test ladder: every level passes on the simulator's oracle through the run service,
its checks refuse wrong answers, and the CLI lists the ladder and names unknown levels."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rlm_engine.jobs.levels import LEVELS, UnknownLevelError, level, select
from rlm_engine.jobs.levels.checks import check_choice, check_fields, check_id, check_number
from rlm_engine.jobs.levels.join_level import OUTPUT_SCHEMA
from rlm_engine.jobs.test_levels import main
from rlm_engine.settings import Settings
from rlm_engine.store.factory import open_store

# What each level must have used: one sub-call per report (3), one child RLM per
# warehouse (4), a classifying fan-out over the rows SQL left (7), the ticket's sub-call (8).
SUB_CALLS = {1: 0, 2: 0, 3: 8, 4: 4, 5: 0, 6: 0, 8: 1}


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("number", [lv.number for lv in LEVELS])
def test_level_passes_on_the_oracle(
    number: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(
        capsys, "--level", str(number), "--json", "--data-dir", str(tmp_path / "data")
    )
    report = json.loads(out)
    (outcome,) = report["levels"]
    assert outcome["passed"], outcome
    assert code == 0
    assert report["model"] == "sim/oracle" and report["sub_model"] == "sim/oracle"
    assert outcome["stop_reason"] in ("final", "submitted")
    if number in SUB_CALLS:
        assert outcome["sub_calls"] == SUB_CALLS[number]
    else:
        assert outcome["sub_calls"] >= 1
    if number == 8:
        assert outcome["fields"] == json.loads(outcome["expected"])
    else:
        assert outcome["answer"].strip() == outcome["expected"]
    # The run went through the run service: it is recorded in the store like `rlm ask`'s.
    store = open_store(None, Settings.from_env().home)
    try:
        run = store.get_run(outcome["run_id"])
    finally:
        store.close()
    assert run is not None and run.status == "completed"


def test_text_output_says_pass_with_answer_and_expected(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(capsys, "--level", "1", "--data-dir", str(tmp_path))
    expected = level(1).build(tmp_path / "again", 0).expected
    assert code == 0
    assert f"PASS  level 1 arithmetic: answer '{expected}', expected '{expected}'" in out
    assert "1 of 1 level(s) passed with sim/oracle" in out


def test_a_run_without_the_answer_fails_with_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The echo policy writes no code and no FINAL: the run stops without an answer.
    code, out, _ = _run(
        capsys,
        "--level",
        "1",
        "--model",
        "sim/echo",
        "--max-iterations",
        "1",
        "--data-dir",
        str(tmp_path),
    )
    assert code == 1
    assert "FAIL  level 1 arithmetic: answer ''" in out
    assert "the run stopped without an answer (max_iterations" in out
    assert "0 of 1 level(s) passed with sim/echo" in out
    assert "oracle" not in out


def test_a_wrong_answer_fails_every_levels_check(tmp_path: Path) -> None:
    for lv in LEVELS:
        prepared = lv.build(tmp_path, 0)
        if prepared.output_schema is not None:
            right: dict[str, Any] = json.loads(prepared.expected)
            assert prepared.check("", right).passed
            wrong = dict(right, total_cents=right["total_cents"] + 1)
            verdict = prepared.check("", wrong)
            assert not verdict.passed and "total_cents" in verdict.reason
            continue
        assert prepared.check(prepared.expected, None).passed, lv.name
        assert prepared.check(f"The answer is {prepared.expected}.", None).passed, lv.name
        verdict = prepared.check("I could not find it", None)
        assert not verdict.passed and verdict.reason, lv.name


def test_number_check_is_exact() -> None:
    assert check_number("The total is 1,234.", 1234).passed
    assert check_number("-17", -17).passed
    assert check_number("The sum of the 15 integers is 1234", 1234).passed
    assert not check_number("1233", 1234).passed
    assert not check_number("either 1234 or 1235", 1234).passed
    assert not check_number("1234.5", 1234).passed


def test_id_and_choice_checks_need_one_commitment() -> None:
    assert check_id("token tok-0000abcd.", "tok-0000abcd", r"tok-[0-9a-f]{8}").passed
    assert not check_id("tok-0000abce", "tok-0000abcd", r"tok-[0-9a-f]{8}").passed
    assert not check_id("tok-0000abcd or tok-0000abce", "tok-0000abcd", r"tok-[0-9a-f]{8}").passed
    choices = ("north", "south", "east", "west")
    assert check_choice("The **North** warehouse.", "north", choices).passed
    assert not check_choice("north, then south", "north", choices).passed
    assert not check_choice("northern", "north", choices).passed


def test_typed_check_applies_the_schema_first() -> None:
    right = {
        "customer_id": "C1001",
        "name": "Ines Moreau",
        "total_cents": 5000,
        "ticket_product": "Lumo lamp",
    }
    assert check_fields(dict(right, name="ines  moreau"), OUTPUT_SCHEMA, right).passed
    as_text = check_fields(dict(right, total_cents="5000"), OUTPUT_SCHEMA, right)
    assert not as_text.passed and "schema" in as_text.reason
    assert not check_fields(dict(right, extra=1), OUTPUT_SCHEMA, right).passed
    assert not check_fields(None, OUTPUT_SCHEMA, right).passed


def test_data_is_deterministic_by_seed(tmp_path: Path) -> None:
    for lv in LEVELS:
        first = lv.build(tmp_path / "a", 3)
        assert lv.build(tmp_path / "b", 3).expected == first.expected, lv.name
        assert lv.build(tmp_path / "a", 3).expected == first.expected, lv.name  # rebuilt in place
    assert level(2).build(tmp_path / "c", 4).expected != level(2).build(tmp_path / "d", 5).expected


def test_list_prints_the_ladder(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "--list")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["level", "name", "exercises"]
    assert len(lines) == len(LEVELS) + 1
    for lv, line in zip(LEVELS, lines[1:], strict=True):
        assert line.split()[:2] == [str(lv.number), lv.name]
        assert lv.exercises in line
    code, out, _ = _run(capsys, "--list", "--json")
    assert [row["name"] for row in json.loads(out)["levels"]] == [lv.name for lv in LEVELS]


def test_rlm_jobs_test_is_the_same_command(capsys: pytest.CaptureFixture[str]) -> None:
    from rlm_engine.cli.main import main as rlm

    assert rlm(["jobs", "test", "--list"]) == 0
    assert "typed-join" in capsys.readouterr().out


def test_unknown_level_is_a_typed_error_listing_the_levels(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(UnknownLevelError) as raised:
        select("2,42")
    assert "42" in str(raised.value)
    assert all(f"{lv.number} {lv.name}" in raised.value.hint for lv in LEVELS)
    code, _, err = _run(capsys, "--level", "42")
    assert code == 2
    assert "rlm: there is no test level 42" in err
    assert "8 typed-join" in err
    code, out, err = _run(capsys, "--level", "nine", "--json")
    assert code == 2
    assert json.loads(out)["error"]["type"] == "UnknownLevelError"


def test_selections() -> None:
    assert [lv.number for lv in select("1-3")] == [1, 2, 3]
    assert [lv.number for lv in select("5,2,typed-join,2")] == [2, 5, 8]
    with pytest.raises(UnknownLevelError):
        select("4-2")


def test_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys)
    assert code == 2 and "--level N" in err
    code, _, err = _run(capsys, "--all", "--level", "1")
    assert code == 2 and "give one of them" in err
    code, _, err = _run(capsys, "--level", "1", "--context", "x.txt")
    assert code == 2 and "bring their own data" in err


def test_process_executor_runs_cells_as_artifacts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from rlm_engine.integrations.delta_lake import Lakehouse

    lake = tmp_path / "lake"
    code, out, _ = _run(
        capsys, "--level", "1", "--executor", "process", "--lakehouse", str(lake), "--json"
    )
    (outcome,) = json.loads(out)["levels"]
    assert code == 0 and outcome["passed"], outcome
    cells = Lakehouse(lake).read("artifact_registry", where={"session_id": outcome["run_id"]})
    assert cells and all(row["status"] == "completed" for row in cells)


def test_only_the_simulator_sees_the_oracle_task_key(tmp_path: Path) -> None:
    for lv in LEVELS:
        prepared = lv.build(tmp_path, 0)
        assert prepared.question_for("openai/gpt-5-mini") == prepared.question
        if prepared.oracle_tag is not None:
            assert prepared.oracle_tag in prepared.question_for("sim/oracle")
