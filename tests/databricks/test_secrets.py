"""Secrets from a scope of the double, and the canary that must never show: not in a log
record, not in an exception's text, and masked by `redact`."""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from databricks.sdk import WorkspaceClient
from databricks_double import DatabricksDouble

from rlm_engine.integrations.databricks.secrets import (
    MASK,
    Redactor,
    SecretNotFoundError,
    load_secrets,
    redact,
)
from rlm_engine.integrations.databricks.workspace import WorkspaceError, workspace_client

SCOPE = "rlm-secrets"
CANARY = "sk-canary-5f0e2c9b7a41"
CANARY_B64 = base64.b64encode(CANARY.encode()).decode()


@pytest.fixture
def w(tmp_path: Path) -> Iterator[WorkspaceClient]:
    with DatabricksDouble(tmp_path / "ws") as double:
        client = workspace_client(host=double.url, token=double.token)
        client.secrets.create_scope(SCOPE)
        client.secrets.put_secret(SCOPE, "OPENAI_API_KEY", string_value=CANARY)
        client.secrets.put_secret(SCOPE, "JIRA_API_TOKEN", string_value="jira-token-0001")
        yield client


def test_the_values_of_the_keys_asked_for_are_returned(w: WorkspaceClient) -> None:
    loaded = load_secrets(w, SCOPE, ["OPENAI_API_KEY", "JIRA_API_TOKEN"], redactor=Redactor())
    assert loaded == {"OPENAI_API_KEY": CANARY, "JIRA_API_TOKEN": "jira-token-0001"}


def test_a_missing_key_names_scope_and_key(w: WorkspaceClient) -> None:
    with pytest.raises(SecretNotFoundError) as caught:
        load_secrets(w, SCOPE, ["OPENAI_API_KEY", "ABSENT"], redactor=Redactor())
    assert "'ABSENT'" in str(caught.value) and SCOPE in str(caught.value)
    assert f"databricks secrets put-secret {SCOPE} ABSENT" in caught.value.hint
    assert CANARY not in str(caught.value)
    assert load_secrets(w, SCOPE, ["ABSENT"], missing_ok=True, redactor=Redactor()) == {}


def test_a_missing_scope_is_a_typed_error(w: WorkspaceClient) -> None:
    with pytest.raises((SecretNotFoundError, WorkspaceError), match="no-such-scope"):
        load_secrets(w, "no-such-scope", ["OPENAI_API_KEY"], redactor=Redactor())


def test_the_canary_appears_in_no_log_record_and_no_exception_text(
    w: WorkspaceClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # the SDK's debug log shows the replies it reads
    loaded = load_secrets(w, SCOPE, ["OPENAI_API_KEY"])  # the process-wide redactor
    key = loaded["OPENAI_API_KEY"]

    log = logging.getLogger("rlm_engine.test_secrets")
    log.warning("calling the provider with key %s", key)
    log.info(f"inline {key} in the message")
    try:
        raise RuntimeError(f"provider refused key {key}")
    except RuntimeError as exc:
        log.exception("request failed")
        exception_text = redact(str(exc))

    text = caplog.text + "".join(r.getMessage() for r in caplog.records)
    assert caplog.records and MASK in text
    assert CANARY not in text and CANARY_B64 not in text
    assert CANARY not in exception_text and MASK in exception_text
    assert redact(f"Authorization: Bearer {CANARY}!") == f"Authorization: Bearer {MASK}!"
    assert redact(CANARY_B64) == MASK


def test_a_redactor_masks_longest_values_first_and_skips_tiny_ones() -> None:
    guard = Redactor(["abcd", "abcdefgh", "on"])
    assert guard.redact("x abcdefgh y abcd z on") == f"x {MASK} y {MASK} z on"
    record = logging.LogRecord("n", logging.INFO, __file__, 1, "v=%s", ("abcdefgh",), None)
    assert guard.filter(record)
    assert record.getMessage() == f"v={MASK}"
