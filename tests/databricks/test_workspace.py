"""The workspace client: the SDK's standard authentication, and typed errors when it fails."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from databricks_double import DatabricksDouble

from rlm_engine.errors import MissingExtraError
from rlm_engine.integrations.databricks.volumes import VolumeFiles
from rlm_engine.integrations.databricks.workspace import (
    WorkspaceAuthError,
    WorkspaceError,
    workspace_client,
)

SDK_VARIABLES = ("DATABRICKS_HOST", "DATABRICKS_TOKEN", "DATABRICKS_CONFIG_PROFILE")


@pytest.fixture
def no_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No variables and an empty config file: nothing for the SDK to find."""
    for name in SDK_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    config = tmp_path / "databrickscfg"
    config.write_text("")
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(config))
    return config


@pytest.fixture
def double(tmp_path: Path) -> Iterator[DatabricksDouble]:
    with DatabricksDouble(tmp_path / "ws") as d:
        yield d


def test_the_environment_variables_authenticate(
    double: DatabricksDouble, no_credentials: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABRICKS_HOST", double.url)
    monkeypatch.setenv("DATABRICKS_TOKEN", double.token)
    w = workspace_client()
    me = w.current_user.me()
    assert me.user_name
    assert ("GET", "/api/2.0/preview/scim/v2/Me") in double.requests


def test_a_profile_authenticates(double: DatabricksDouble, no_credentials: Path) -> None:
    no_credentials.write_text(f"[dev]\nhost = {double.url}\ntoken = {double.token}\n")
    w = workspace_client("dev")
    assert w.current_user.me().user_name
    assert w.config.host == double.url


def test_no_credentials_is_a_typed_error_that_says_what_to_set(no_credentials: Path) -> None:
    with pytest.raises(WorkspaceAuthError) as caught:
        workspace_client()
    assert "DATABRICKS_HOST/DATABRICKS_TOKEN" in str(caught.value)
    assert "DATABRICKS_HOST and DATABRICKS_TOKEN" in caught.value.hint
    assert "profile" in caught.value.hint


def test_an_unknown_profile_is_named_in_the_error(no_credentials: Path) -> None:
    with pytest.raises(WorkspaceAuthError, match="profile 'nope'"):
        workspace_client("nope")


def test_a_refused_token_is_a_typed_error_without_the_token(double: DatabricksDouble) -> None:
    w = workspace_client(host=double.url, token="dapi-wrong-token-value")
    files = VolumeFiles(w, "/Volumes/main/rlm/artifacts")
    with pytest.raises(WorkspaceError) as caught:
        files.read_text("a.txt")
    assert "permission denied" in str(caught.value)
    assert "dapi-wrong-token-value" not in str(caught.value)
    assert caught.value.hint


def test_a_missing_sdk_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "databricks.sdk", None)
    with pytest.raises(MissingExtraError) as caught:
        workspace_client()
    assert caught.value.extra == "databricks"
    assert "rlm-engine[databricks]" in str(caught.value)
