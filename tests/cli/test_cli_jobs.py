"""`rlm jobs` and `rlm-orchestrator`: the errors a user sees before any run starts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rlm_engine.cli.main import main
from rlm_engine.jobs.orchestrator import main as orchestrator_main


def test_jobs_lists_the_four_jobs(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["jobs", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for job in ("orchestrate", "execute", "ingest", "test"):
        assert job in out


def test_orchestrate_takes_the_job_flags_and_rlm_asks_run_flags(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["jobs", "orchestrate", "--help"])
    out = capsys.readouterr().out
    for flag in ("--prompt-file", "--session-id", "--dedupe-key", "--executor", "--catalog"):
        assert flag in out
    for flag in ("--context", "--model", "--sub-model", "--max-depth", "--budget-usd"):
        assert flag in out


def test_databricks_mode_is_a_usage_error_that_says_what_to_do(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("DATABRICKS_HOST", "DATABRICKS_TOKEN", "DATABRICKS_CONFIG_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    code = main(["jobs", "orchestrate", "--mode", "databricks", "--prompt", "q"])
    err = capsys.readouterr().err
    assert code == 2
    assert "rlm: cannot authenticate to a Databricks workspace" in err
    assert "DATABRICKS_HOST" in err


def test_a_missing_prompt_file_names_it_and_the_three_ways(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "task-17.txt"
    code = orchestrator_main(["--prompt-file", str(missing)])
    err = capsys.readouterr().err
    assert code == 2
    assert f"rlm: prompt file {missing} does not exist" in err
    assert "rlm: hint: give the prompt with --prompt TEXT" in err
    assert "--prompt-file PATH" in err and "RLM_HOME/task.txt" in err


def test_no_prompt_at_all_names_the_default_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RLM_HOME", str(tmp_path))
    code = main(["jobs", "orchestrate", "--json"])
    captured = capsys.readouterr()
    assert code == 2
    assert f"default prompt file {tmp_path / 'task.txt'} does not exist" in captured.err
    error = json.loads(captured.out)
    assert error["exit_code"] == 2 and error["error"]["type"] == "PromptNotFoundError"


def test_a_bad_variable_is_reported_by_name(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RLM_MAX_ITERATIONS", "0")
    code = main(["jobs", "orchestrate", "--prompt", "q"])
    err = capsys.readouterr().err
    assert code == 2
    assert "rlm: RLM_MAX_ITERATIONS='0' is not a whole number of at least 1" in err


def test_the_console_script_module_runs_as_a_program(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "rlm_engine.jobs.orchestrator", "--mode", "databricks"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "cannot authenticate to a Databricks workspace" in done.stderr


def test_the_other_jobs_get_their_arguments_untouched(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["jobs", "test", "--list"])
    out = capsys.readouterr().out
    assert code == 0
    assert "arithmetic" in out  # the ladder rlm-test --list prints
