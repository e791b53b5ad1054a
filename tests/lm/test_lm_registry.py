"""Resolving model strings to adapters, and provider status for `rlm models`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlm_engine.errors import ConfigurationError, MissingExtraError, UnknownProviderError
from rlm_engine.lm import (
    PROVIDERS,
    PricedModel,
    ProviderSpec,
    RetryingModel,
    ScriptedModel,
    build_model,
    provider_status,
    resolve_model,
    split_model_spec,
)
from rlm_engine.lm.anthropic import AnthropicModel
from rlm_engine.lm.gemini import GeminiModel
from rlm_engine.lm.openai import OpenAIChatModel
from rlm_engine.lm.retry import BreakerBoard
from rlm_engine.types import Message


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("openai/gpt-5-mini", ("openai", "gpt-5-mini")),
        ("openai:gpt-5-mini", ("openai", "gpt-5-mini")),
        ("ollama/qwen3:8b", ("ollama", "qwen3:8b")),
        ("ollama:qwen3:8b", ("ollama", "qwen3:8b")),
        ("litellm/openai/gpt-4o-mini", ("litellm", "openai/gpt-4o-mini")),
        ("scripted:/tmp/replies.jsonl", ("scripted", "/tmp/replies.jsonl")),
        (" OpenAI/gpt-4o ", ("openai", "gpt-4o")),
    ],
)
def test_split_model_spec(spec: str, expected: tuple[str, str]) -> None:
    assert split_model_spec(spec) == expected


@pytest.mark.parametrize("spec", ["gpt-4o", "openai/", "/gpt-4o", ":x"])
def test_malformed_model_strings_are_rejected(spec: str) -> None:
    with pytest.raises(ConfigurationError, match="provider"):
        split_model_spec(spec)


def test_openai_with_key_and_colon_form() -> None:
    model = resolve_model("openai:gpt-5-mini", env={"OPENAI_API_KEY": "sk-test"})
    assert isinstance(model, OpenAIChatModel)
    assert model.name == "openai/gpt-5-mini"
    assert model.provider == "openai"
    assert model.base_url is None


def test_openai_without_key_names_the_variable() -> None:
    with pytest.raises(ConfigurationError, match="OPENAI_API_KEY"):
        resolve_model("openai/gpt-5-mini", env={})


def test_openai_base_url_needs_no_key() -> None:
    model = resolve_model("openai/local", env={"OPENAI_BASE_URL": "http://127.0.0.1:9/v1"})
    assert isinstance(model, OpenAIChatModel)
    assert model.base_url == "http://127.0.0.1:9/v1"


@pytest.mark.parametrize(
    ("spec", "env", "url"),
    [
        ("vllm/qwen", {}, "http://localhost:8000/v1"),
        ("vllm/qwen", {"VLLM_BASE_URL": "http://gpu:9000/v1"}, "http://gpu:9000/v1"),
        ("ollama/qwen3-coder", {}, "http://localhost:11434/v1"),
        ("ollama/qwen3-coder", {"OLLAMA_BASE_URL": "http://box:11434"}, "http://box:11434/v1"),
        ("llamacpp/any", {}, "http://localhost:8080/v1"),
        (
            "databricks/my-endpoint",
            {"DATABRICKS_HOST": "adb-1.azuredatabricks.net", "DATABRICKS_TOKEN": "dapi"},
            "https://adb-1.azuredatabricks.net/serving-endpoints",
        ),
        ("sim/sim-model", {}, "http://127.0.0.1:8765/v1"),
    ],
)
def test_openai_compatible_providers(spec: str, env: dict[str, str], url: str) -> None:
    model = resolve_model(spec, env=env)
    assert isinstance(model, OpenAIChatModel)
    assert model.base_url == url
    assert model.name == spec


def test_databricks_names_missing_variables() -> None:
    with pytest.raises(ConfigurationError, match="DATABRICKS_TOKEN") as caught:
        resolve_model("databricks/ep", env={"DATABRICKS_HOST": "https://x"})
    assert "DATABRICKS_HOST" not in str(caught.value)
    with pytest.raises(ConfigurationError, match="DATABRICKS_HOST and DATABRICKS_TOKEN"):
        resolve_model("databricks/ep", env={})


def test_anthropic_and_gemini_need_their_keys() -> None:
    with pytest.raises(ConfigurationError, match="ANTHROPIC_API_KEY"):
        resolve_model("anthropic/claude-sonnet-4-5", env={})
    with pytest.raises(ConfigurationError, match="GEMINI_API_KEY"):
        resolve_model("gemini/gemini-2.5-flash", env={})
    assert isinstance(
        resolve_model("anthropic/claude-sonnet-4-5", env={"ANTHROPIC_API_KEY": "k"}),
        AnthropicModel,
    )
    gemini = resolve_model("gemini/gemini-2.5-flash", env={"GOOGLE_API_KEY": "k"})
    assert isinstance(gemini, GeminiModel)
    assert gemini.name == "gemini/gemini-2.5-flash"


def test_missing_sdk_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(__import__("sys").modules, "anthropic", None)
    with pytest.raises(MissingExtraError, match=r"rlm-engine\[anthropic\]") as caught:
        resolve_model("anthropic/claude-sonnet-4-5", env={"ANTHROPIC_API_KEY": "k"})
    assert caught.value.extra == "anthropic"


def test_unknown_provider_lists_known_ones() -> None:
    with pytest.raises(UnknownProviderError) as caught:
        resolve_model("nosuch/model", env={})
    message = str(caught.value)
    assert "nosuch" in message
    for name in ("openai", "anthropic", "gemini", "ollama", "vllm", "scripted"):
        assert name in message


async def test_scripted_model_from_jsonl_path(tmp_path: Path) -> None:
    path = tmp_path / "replies.jsonl"
    path.write_text(json.dumps("first") + "\n" + json.dumps({"reply": "second"}) + "\n")
    model = resolve_model(f"scripted/{path}", env={})
    assert isinstance(model, ScriptedModel)
    assert model.name == f"scripted/{path}"
    replies = [(await model.complete([Message("user", "q")])).text for _ in range(2)]
    assert replies == ["first", "second"]


def test_extra_providers_can_be_registered() -> None:
    custom = ScriptedModel(["hi"], name="mine/model")
    spec = ProviderSpec("mine", lambda model, env: custom, "a test provider")
    providers = {**PROVIDERS, "mine": spec}
    assert resolve_model("mine/model", env={}, providers=providers) is custom
    with pytest.raises(UnknownProviderError):
        resolve_model("mine/model", env={})


def test_build_model_composes_retry_pricing_and_breaker() -> None:
    board = BreakerBoard()
    model = build_model("openai/gpt-4o-mini", env={"OPENAI_API_KEY": "k"}, breakers=board)
    assert isinstance(model, RetryingModel)
    assert isinstance(model.inner, PricedModel)
    assert isinstance(model.inner.inner, OpenAIChatModel)
    assert model.breaker is board.get("openai")
    assert model.name == "openai/gpt-4o-mini"


def test_provider_status_reports_presence_never_values() -> None:
    env = {"OPENAI_API_KEY": "sk-secret-value", "GOOGLE_API_KEY": "g-secret"}
    infos = {info.name: info for info in provider_status(env)}
    assert set(infos) == set(PROVIDERS)

    openai = infos["openai"]
    assert openai.ready and openai.missing == ()
    assert {s.name: s.is_set for s in openai.env} == {
        "OPENAI_API_KEY": True,
        "OPENAI_BASE_URL": False,
    }
    assert infos["gemini"].missing == ()
    assert infos["anthropic"].missing == ("ANTHROPIC_API_KEY",)
    assert not infos["anthropic"].ready
    assert infos["databricks"].missing == ("DATABRICKS_HOST", "DATABRICKS_TOKEN")
    assert infos["litellm"].extra == "litellm"
    assert "secret" not in repr(list(infos.values()))


def test_openai_transport_setting_is_validated() -> None:
    from rlm_engine.errors import ConfigurationError
    from rlm_engine.lm import resolve_model

    env = {"OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "RLM_OPENAI_TRANSPORT": "carrier-pigeon"}
    with pytest.raises(ConfigurationError, match="RLM_OPENAI_TRANSPORT"):
        resolve_model("openai/x", env=env)
