"""Job settings: flags over RLM_* over ADK_* over defaults, and the prompt's precedence."""

from __future__ import annotations

from pathlib import Path

import pytest

from rlm_engine.errors import ConfigurationError
from rlm_engine.jobs.args import orchestrator_parser
from rlm_engine.jobs.prompt_source import PromptNotFoundError, resolve_prompt
from rlm_engine.jobs.settings import JobSettings


def settings(env: dict[str, str], *argv: str) -> JobSettings:
    args = orchestrator_parser().parse_args(list(argv))
    return JobSettings.from_env(env).with_flags(args)


def test_defaults_are_the_documented_ones(tmp_path: Path) -> None:
    job = settings({"RLM_HOME": str(tmp_path)})
    assert (job.mode, job.catalog, job.schema) == ("local", "rlm", "jobs")
    assert (job.session_id, job.user_id) == ("session_001", "job_user")
    assert job.max_iterations is None and job.prompt == "" and job.prompt_file is None
    assert job.default_prompt_file == str(tmp_path / "task.txt")
    assert job.lakehouse_root == str(tmp_path / "lakehouse" / "rlm" / "jobs")
    assert job.executor_job_id is None and job.orchestrator_job_id is None


def test_flags_win_over_rlm_variables_which_win_over_adk_aliases(tmp_path: Path) -> None:
    env = {
        "RLM_HOME": str(tmp_path),
        "ADK_DELTA_CATALOG": "adk_cat",
        "ADK_DELTA_SCHEMA": "adk_schema",
        "ADK_SESSION_ID": "adk_session",
        "ADK_USER_ID": "adk_user",
        "ADK_MAX_ITERATIONS": "4",
        "ADK_EXECUTOR_JOB_ID": "111",
        "ADK_ORCHESTRATOR_JOB_ID": "222",
        "RLM_CATALOG": "rlm_cat",
        "RLM_SESSION_ID": "rlm_session",
        "RLM_MAX_ITERATIONS": "7",
        "RLM_EXECUTOR_JOB_ID": "333",
    }
    from_env = settings(env)
    assert from_env.catalog == "rlm_cat"  # RLM_* over ADK_*
    assert from_env.schema == "adk_schema"  # the alias when ours is unset
    assert from_env.session_id == "rlm_session"
    assert from_env.user_id == "adk_user"
    assert from_env.max_iterations == 7
    assert from_env.executor_job_id == "333"
    assert from_env.orchestrator_job_id == "222"
    assert from_env.lakehouse_root == str(tmp_path / "lakehouse" / "rlm_cat" / "adk_schema")

    flagged = settings(
        env,
        "--catalog",
        "flag_cat",
        "--session-id",
        "flag_session",
        "--max-iterations",
        "2",
        "--user-id",
        "flag_user",
        "--lakehouse",
        str(tmp_path / "elsewhere"),
    )
    assert (flagged.catalog, flagged.session_id, flagged.user_id) == (
        "flag_cat",
        "flag_session",
        "flag_user",
    )
    assert flagged.max_iterations == 2
    assert flagged.schema == "adk_schema"  # what no flag set keeps its variable's value
    assert flagged.lakehouse_root == str(tmp_path / "elsewhere")


def test_an_empty_variable_counts_as_unset(tmp_path: Path) -> None:
    job = settings({"RLM_HOME": str(tmp_path), "RLM_SESSION_ID": " ", "ADK_SESSION_ID": "s9"})
    assert job.session_id == "s9"


def test_bad_values_name_the_variable_and_what_to_give(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as info:
        JobSettings.from_env({"RLM_HOME": str(tmp_path), "ADK_MAX_ITERATIONS": "lots"})
    assert "ADK_MAX_ITERATIONS='lots'" in str(info.value)
    assert "whole number" in str(info.value)
    with pytest.raises(ConfigurationError) as info:
        JobSettings.from_env({"RLM_HOME": str(tmp_path), "RLM_JOBS_MODE": "cloud"})
    assert "RLM_JOBS_MODE='cloud' is not a job mode" in str(info.value)
    assert "local, databricks" in (info.value.hint or "")


def test_databricks_mode_is_refused_with_what_to_do(tmp_path: Path) -> None:
    job = settings({"RLM_HOME": str(tmp_path)}, "--mode", "databricks")
    with pytest.raises(ConfigurationError) as info:
        job.require_local()
    assert "not available in this version" in str(info.value)
    assert "--mode local" in (info.value.hint or "")
    settings({"RLM_HOME": str(tmp_path)}, "--mode", "local").require_local()


def test_a_literal_prompt_wins_over_the_files(tmp_path: Path) -> None:
    prompt_file = tmp_path / "p.txt"
    prompt_file.write_text("from the file\n")
    (tmp_path / "task.txt").write_text("from the default file")
    env = {"RLM_HOME": str(tmp_path), "RLM_PROMPT_FILE": str(prompt_file)}
    assert resolve_prompt(settings(env, "--prompt", "literal")) == "literal"
    assert resolve_prompt(settings({**env, "ADK_PROMPT": "from adk"})) == "from adk"


def test_an_empty_prompt_falls_through_to_the_file_then_the_default(tmp_path: Path) -> None:
    prompt_file = tmp_path / "p.txt"
    prompt_file.write_text("  from the file\n")
    (tmp_path / "task.txt").write_text("from the default file\n")
    home = {"RLM_HOME": str(tmp_path)}
    given = settings({**home, "RLM_PROMPT": ""}, "--prompt", "", "--prompt-file", str(prompt_file))
    assert resolve_prompt(given) == "from the file"
    assert resolve_prompt(settings(home)) == "from the default file"
    elsewhere = tmp_path / "default.txt"
    elsewhere.write_text("configured default")
    configured = settings({**home, "RLM_DEFAULT_PROMPT_FILE": str(elsewhere)})
    assert resolve_prompt(configured) == "configured default"


def test_a_missing_prompt_file_names_the_path_and_the_three_ways(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.txt"
    with pytest.raises(PromptNotFoundError) as info:
        resolve_prompt(settings({"RLM_HOME": str(tmp_path)}, "--prompt-file", str(missing)))
    assert str(missing) in str(info.value) and "does not exist" in str(info.value)
    hint = info.value.hint or ""
    assert "--prompt" in hint and "--prompt-file" in hint and "RLM_HOME/task.txt" in hint
    # A given file that is missing is an error, never a silent fall-back to the default.
    (tmp_path / "task.txt").write_text("default")
    with pytest.raises(PromptNotFoundError):
        resolve_prompt(settings({"RLM_HOME": str(tmp_path)}, "--prompt-file", str(missing)))
    (tmp_path / "task.txt").unlink()
    with pytest.raises(PromptNotFoundError) as info:
        resolve_prompt(settings({"RLM_HOME": str(tmp_path)}))
    assert "default prompt file" in str(info.value)


def test_an_empty_prompt_file_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text(" \n")
    with pytest.raises(PromptNotFoundError) as info:
        resolve_prompt(settings({"RLM_HOME": str(tmp_path)}, "--prompt-file", str(empty)))
    assert "is empty" in str(info.value)
