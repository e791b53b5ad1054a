"""`Settings.from_env`: our `RLM_*` names, the seed's aliases, and bad values."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rlm_engine.errors import ConfigurationError
from rlm_engine.settings import DEFAULT_MAX_CONTEXT_BYTES, Settings


def test_defaults_without_any_variable(tmp_path: Path) -> None:
    s = Settings.from_env({"RLM_HOME": str(tmp_path)})
    assert s.home == tmp_path
    assert s.store_url is None and s.model is None
    assert s.allowed_paths == () and s.cors_origins == ()
    assert s.warm_pool is None  # the serving process decides (DEFAULT_WARM_POOL)
    assert s.max_context_bytes == DEFAULT_MAX_CONTEXT_BYTES
    assert s.max_depth is None and s.execution_timeout_s is None
    assert (s.max_concurrent_runs, s.tenant_concurrent_runs) == (8, 4)
    assert s.daily_budget_usd is None


def test_reads_every_server_setting(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    s = Settings.from_env(
        {
            "RLM_HOME": str(tmp_path),
            "RLM_ALLOWED_PATHS": f"{a}{os.pathsep}{b}{os.pathsep}",
            "RLM_CORS_ORIGINS": "http://localhost:5173, https://ui.example.org",
            "RLM_WARM_POOL": "3",
            "RLM_MAX_CONTEXT_BYTES": "1_000_000",
            "RLM_MAX_DEPTH": "2",
            "RLM_EXECUTION_TIMEOUT": "300",
            "RLM_MAX_CONCURRENT_RUNS": "16",
            "RLM_TENANT_CONCURRENT_RUNS": "2",
            "RLM_DAILY_BUDGET_USD": "12.5",
        }
    )
    assert s.allowed_paths == (a, b)
    assert s.cors_origins == ("http://localhost:5173", "https://ui.example.org")
    assert s.warm_pool == 3
    assert s.max_context_bytes == 1_000_000
    assert s.max_depth == 2
    assert s.execution_timeout_s == 300.0
    assert (s.max_concurrent_runs, s.tenant_concurrent_runs) == (16, 2)
    assert s.daily_budget_usd == 12.5


def test_seed_aliases_are_accepted(tmp_path: Path) -> None:
    s = Settings.from_env(
        {
            "RLM_HOME": str(tmp_path),
            "DATABASE_URL": "postgresql+psycopg://db/rlm",
            "DEFAULT_MODEL": "openai/gpt-4o-mini",
            "MAX_CONTEXT_SIZE": "500000",
            "MAX_RECURSION_DEPTH": "10",
            "EXECUTION_TIMEOUT": "300",
        }
    )
    assert s.store_url == "postgresql+psycopg://db/rlm"
    assert s.model == "openai/gpt-4o-mini"
    assert s.max_context_bytes == 500_000
    assert s.max_depth == 10
    assert s.execution_timeout_s == 300.0


def test_our_names_win_over_the_aliases(tmp_path: Path) -> None:
    s = Settings.from_env(
        {
            "RLM_HOME": str(tmp_path),
            "RLM_STORE_URL": "sqlite:///ours.db",
            "DATABASE_URL": "postgresql+psycopg://theirs/db",
            "RLM_MODEL": "sim/ours",
            "DEFAULT_MODEL": "openai/theirs",
            "RLM_MAX_DEPTH": "1",
            "MAX_RECURSION_DEPTH": "10",
            "RLM_MAX_CONTEXT_BYTES": "2048",
            "MAX_CONTEXT_SIZE": "500000",
            "RLM_EXECUTION_TIMEOUT": "5",
            "EXECUTION_TIMEOUT": "300",
        }
    )
    assert s.store_url == "sqlite:///ours.db"
    assert s.model == "sim/ours"
    assert s.max_depth == 1
    assert s.max_context_bytes == 2048
    assert s.execution_timeout_s == 5.0


def test_an_empty_variable_counts_as_unset(tmp_path: Path) -> None:
    s = Settings.from_env({"RLM_HOME": str(tmp_path), "RLM_MODEL": "", "DEFAULT_MODEL": "x/y"})
    assert s.model == "x/y"


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("RLM_MAX_CONTEXT_BYTES", "lots"),
        ("MAX_CONTEXT_SIZE", "0"),
        ("RLM_MAX_DEPTH", "1.5"),
        ("RLM_EXECUTION_TIMEOUT", "-3"),
        ("RLM_DAILY_BUDGET_USD", "nan"),
        ("RLM_MAX_CONCURRENT_RUNS", "0"),
        ("RLM_WARM_POOL", "-1"),
    ],
)
def test_a_bad_number_names_the_variable(tmp_path: Path, var: str, value: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env({"RLM_HOME": str(tmp_path), var: value})
    assert var in str(caught.value)
    assert var in caught.value.hint
