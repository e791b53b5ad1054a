"""`RunSpec` and the settings runs are stored with: every dict `rlm ask` writes (and the
older, shorter ones) loads back unchanged; a key or value it cannot take is named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rlm_engine.cli.ask import spec_from_args
from rlm_engine.cli.main import build_parser
from rlm_engine.errors import ConfigurationError
from rlm_engine.service.build import build_rlm
from rlm_engine.service.spec import CONFIG_KEYS, RunSpec
from rlm_engine.settings import Settings

# The keys `rlm ask` has stored with every run (plus `session_runs` in a session).
STORED_KEYS = {
    "model",
    "sub_model",
    "fallback_models",
    "context",
    "max_iterations",
    "max_depth",
    "max_children",
    "max_concurrency",
    "max_sub_calls",
    "max_prompt_bytes",
    "sub_context_tokens",
    "max_answer_bytes",
    "max_cost_usd",
    "max_seconds",
    "cell_timeout_s",
    "memory_mb",
    "request_timeout_s",
    "output_mode",
    "max_tokens",
    "max_output_chars",
    "temperature",
    "max_output_tokens",
    "sub_temperature",
    "sub_max_output_tokens",
    "base_url",
    "api_key_env",
    "binary",
    "encoding",
    "response_cache",
    "instructions",
    "plugins",
    "no_default_plugins",
    "isolation",
}

FLAG_SETS = [
    [],
    ["--sub-model", "openai/small", "--fallback-model", "openai/b", "--fallback-model", "x/c"],
    ["--max-iterations", "3", "--max-depth", "2", "--max-children", "7", "--max-sub-calls", "0"],
    ["--max-prompt-bytes", "2048", "--sub-context-tokens", "100", "--max-answer-bytes", "4096"],
    ["--budget-usd", "0.5", "--max-seconds", "12", "--request-timeout", "30", "--memory-mb", "0"],
    ["--cell-timeout", "5", "--max-output-chars", "300", "--output-mode", "digest"],
    ["--max-tokens", "9000", "--temperature", "0", "--max-output-tokens", "50"],
    ["--sub-temperature", "1.5", "--sub-max-output-tokens", "20", "--response-cache", "on"],
    ["--base-url", "http://127.0.0.1:9/v1", "--api-key-env", "MY_KEY"],
    ["--binary", "bytes", "--encoding", "latin-1", "--instructions", "be brief"],
    ["--plugin", "mine", "--no-default-plugins", "--isolation", "none"],
]


@pytest.mark.parametrize("flags", FLAG_SETS)
def test_every_settings_dict_rlm_ask_stores_loads_back(flags: list[str], tmp_path: Path) -> None:
    ctx = tmp_path / "ctx.txt"
    ctx.write_text("text")
    args = build_parser("ask").parse_args(
        ["ask", "q", "--model", "openai/m", "--context", str(ctx), *flags]
    )
    spec = spec_from_args(args, Settings.from_env({"RLM_PLUGINS": "house"}))
    stored = spec.to_json()
    assert set(stored) == STORED_KEYS
    assert RunSpec.from_json(stored) == spec
    assert stored["context"] == [str(ctx.resolve())]
    assert stored["plugins"][0] == "house"


@pytest.mark.parametrize(
    "stored",
    [
        {"model": "scripted/demo-root", "sub_model": "scripted/demo-sub", "context": ["/d/x"]},
        {"model": "openai/m", "max_seconds": 5, "max_cost_usd": 1, "cell_timeout_s": 120},
        {"model": "openai/m", "session_runs": ["a", "b"], "fallback_models": []},
        {"model": "openai/m", "max_depth": None, "encoding": None, "spec_version": 1},
    ],
)
def test_older_and_shorter_stored_settings_load_with_defaults(stored: dict[str, Any]) -> None:
    spec = RunSpec.from_json(stored)
    again = spec.to_json()
    for key, value in stored.items():
        if key == "spec_version":
            continue
        assert again[key] == value  # the same value (whole numbers stay equal as floats)
    assert RunSpec.from_json(again) == spec


def test_a_session_run_keeps_the_runs_its_repl_was_restored_from() -> None:
    spec = RunSpec.from_json({"model": "openai/m", "session_runs": ["r1", "r2"]})
    assert spec.restored_from == ("r1", "r2")
    assert spec.to_json()["session_runs"] == ["r1", "r2"]
    assert "session_runs" not in RunSpec(model="openai/m").to_json()


def test_an_output_schema_is_stored_with_the_run_and_builds_a_typed_rlm(tmp_path: Path) -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    spec = RunSpec.from_json({"model": "openai/m", "output_schema": schema})
    assert spec.to_json()["output_schema"] == schema
    assert RunSpec.from_json(spec.to_json()) == spec
    assert "output_schema" not in RunSpec(model="openai/m").to_json()
    settings = Settings(home=tmp_path, env={"OPENAI_API_KEY": "unused"})
    rlm = build_rlm(spec, settings, on_event=lambda _event: None)
    assert rlm.output_schema is not None
    assert rlm.output_schema.model_json_schema() == schema


@pytest.mark.parametrize(
    ("stored", "named"),
    [
        ({"model": "openai/m", "max_iteration": 3, "colour": "red"}, "colour, max_iteration"),
        ({"sub_model": "openai/m"}, "must name its model"),
        ({"model": "openai/m", "max_depth": "2"}, "max_depth is '2', not a whole number"),
        ({"model": "openai/m", "max_depth": True}, "max_depth is True"),
        ({"model": "openai/m", "isolation": "tight"}, "one of auto, strict, none"),
        ({"model": "openai/m", "plugins": ["a", 3]}, "plugins"),
        ({"model": "openai/m", "binary": None}, "binary is None"),
        ({"model": "openai/m", "output_schema": ["n"]}, "output_schema is"),
    ],
)
def test_keys_and_values_a_spec_cannot_take_are_named(stored: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigurationError, match=named):
        RunSpec.from_json(stored)


def test_config_holds_the_engine_limits_it_sets_and_caps_take_the_smaller() -> None:
    spec = RunSpec(model="openai/m", max_iterations=4, output_mode="digest", max_seconds=50.0)
    assert spec.config() == {"max_iterations": 4, "output_mode": "digest", "max_seconds": 50.0}
    assert set(spec.config()) <= set(CONFIG_KEYS)
    capped = spec.capped(max_seconds=10.0, max_depth=None)
    assert (capped.max_seconds, capped.max_depth) == (10.0, None)
    assert spec.capped(max_seconds=100.0, max_depth=3).max_seconds == 50.0
    assert spec.capped(max_seconds=None, max_depth=3).max_depth == 3
