"""`databricks/<endpoint>` without `DATABRICKS_TOKEN`: the SDK's credentials, asked for per
request, through the double's serving endpoint to the simulator behind it."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, cast

import pytest
from databricks_double import DatabricksDouble

from rlm_engine.errors import ConfigurationError, ProviderError
from rlm_engine.integrations.databricks.serving_auth import SdkAuthServingModel
from rlm_engine.lm.lifecycle import aclose_model
from rlm_engine.lm.registry import resolve_model
from rlm_engine.sim import SimConfig
from rlm_engine.sim.policies import CallablePolicy, message_text
from rlm_engine.sim.runner import SimServerThread
from rlm_engine.types import Message

ENDPOINT = "rlm-llm"


@pytest.fixture
def double(tmp_path: Path) -> Iterator[tuple[DatabricksDouble, SimServerThread]]:
    policy = CallablePolicy(lambda m: "served: " + message_text(m[-1]))
    with (
        SimServerThread(SimConfig(), policy) as sim,
        DatabricksDouble(tmp_path / "ws", serving_base_url=sim.url) as d,
    ):
        yield d, sim


@pytest.fixture
def config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("DATABRICKS_HOST", "DATABRICKS_TOKEN", "DATABRICKS_CONFIG_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "databrickscfg"
    path.write_text("")
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(path))
    return path


class RotatingConfig:
    """A stand-in for the SDK's `Config` whose token changes, as a job identity's does."""

    def __init__(self, host: str, token: str) -> None:
        self.host = host
        self.token = token
        self.calls = 0

    def authenticate(self) -> dict[str, str]:
        self.calls += 1
        if not self.token:
            raise ValueError("token exchange failed")
        return {"Authorization": f"Bearer {self.token}"}


async def test_a_profile_is_used_when_no_token_is_set(
    double: tuple[DatabricksDouble, SimServerThread], config_file: Path
) -> None:
    ws, sim = double
    config_file.write_text(
        f"[DEFAULT]\nhost = {ws.url}\ntoken = {ws.token}\n\n[dev]\nhost = {ws.url}\n"
        f"token = {ws.token}\n"
    )
    envs: list[Mapping[str, str]] = [
        {},  # the DEFAULT profile, host and all
        {"DATABRICKS_HOST": ws.url, "DATABRICKS_CONFIG_PROFILE": "dev"},  # no DATABRICKS_TOKEN
    ]
    for env in envs:
        model = resolve_model(f"databricks/{ENDPOINT}", env=env)
        try:
            completion = await model.complete([Message("user", "hello")])
        finally:
            await aclose_model(model)
        assert model.name == f"databricks/{ENDPOINT}"
        assert completion.text == "served: hello"
    assert [r.model for r in sim.requests] == [ENDPOINT, ENDPOINT]
    assert ("POST", "/serving-endpoints/chat/completions") in ws.requests


async def test_fresh_headers_are_asked_for_on_every_call(
    double: tuple[DatabricksDouble, SimServerThread],
) -> None:
    ws, _ = double
    config = RotatingConfig(ws.url, ws.token)
    model = SdkAuthServingModel(ENDPOINT, cast(Any, config))
    try:
        assert (await model.complete([Message("user", "one")])).text == "served: one"
        ws.token = config.token = "dapi-rotated-token"  # the identity's token was refreshed
        assert (await model.complete([Message("user", "two")])).text == "served: two"
        config.token = ""
        with pytest.raises(ProviderError) as caught:
            await model.complete([Message("user", "three")])
    finally:
        await model.aclose()
    assert config.calls == 3
    assert caught.value.kind == "auth"


def test_no_token_and_no_sdk_credentials_keeps_the_token_error(
    double: tuple[DatabricksDouble, SimServerThread], config_file: Path
) -> None:
    ws, _ = double
    with pytest.raises(ConfigurationError, match="needs DATABRICKS_TOKEN"):
        resolve_model("databricks/x", env={"DATABRICKS_HOST": ws.url})


def test_no_token_and_no_sdk_keeps_the_token_error(
    config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_file.write_text("[DEFAULT]\nhost = http://127.0.0.1:1\ntoken = dapi-x\n")
    monkeypatch.setitem(sys.modules, "databricks.sdk.core", None)
    with pytest.raises(ConfigurationError, match="needs DATABRICKS_TOKEN"):
        resolve_model("databricks/x", env={"DATABRICKS_HOST": "http://127.0.0.1:1"})
