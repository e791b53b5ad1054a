"""`rlm sessions list|show|delete` and `rlm memory get|set|list`."""

from __future__ import annotations

import getpass
import json
from collections.abc import Iterator
from typing import Any

import pytest

from rlm_engine.cli.main import main
from rlm_engine.cli.store_access import open_cli_store
from rlm_engine.settings import Settings
from rlm_engine.store import MemoryScope, NewRun, SqlStore


@pytest.fixture
def store() -> Iterator[SqlStore]:
    opened = open_cli_store(Settings.from_env())
    yield opened
    opened.close()


def cli_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("42", 42),
        ("[1, 2]", [1, 2]),
        ('{"a": true}', {"a": True}),
        ("null", None),
        ('"quoted"', "quoted"),
        ("plain words", "plain words"),
    ],
)
def test_memory_values_are_json_when_they_parse(
    raw: str, stored: Any, store: SqlStore, capsys: pytest.CaptureFixture[str]
) -> None:
    item = cli_json(capsys, "memory", "set", "k", raw, "--json")
    assert item["value"] == stored and item["scope"] == "user"
    assert store.memory_get(MemoryScope.user(getpass.getuser()), "k") is not None
    assert cli_json(capsys, "memory", "get", "k", "--json")["value"] == stored


def test_memory_default_scope_is_the_os_user(
    store: SqlStore, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["memory", "set", "colour", "blue"]) == 0
    capsys.readouterr()
    item = store.memory_get(MemoryScope.user(getpass.getuser()), "colour")
    assert item is not None and item.value == "blue"
    assert main(["memory", "get", "colour"]) == 0
    assert capsys.readouterr().out == "blue\n"


def test_memory_session_scope_is_separate_from_the_user_scope(
    store: SqlStore, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["memory", "set", "limit", "5", "--session", "alpha"]) == 0
    assert main(["memory", "set", "limit", "9"]) == 0
    assert main(["memory", "set", "note", "hi there", "--session", "alpha"]) == 0
    capsys.readouterr()
    listed = cli_json(capsys, "memory", "list", "--session", "alpha", "--json")
    assert [(i["key"], i["value"], i["name"]) for i in listed] == [
        ("limit", 5, "alpha"),
        ("note", "hi there", "alpha"),
    ]
    assert [i["value"] for i in cli_json(capsys, "memory", "list", "--json")] == [9]
    assert main(["memory", "list", "--session", "alpha"]) == 0
    assert capsys.readouterr().out == "limit = 5\nnote = hi there\n"
    # Setting session memory opens the session, so `rlm sessions` shows it.
    assert store.get_session("alpha") is not None


def test_memory_get_of_a_missing_key_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["memory", "get", "nothing", "--session", "s"]) == 2
    err = capsys.readouterr().err
    assert "nothing remembered under 'nothing'" in err and "rlm memory list" in err


def test_sessions_list_show_delete(store: SqlStore, capsys: pytest.CaptureFixture[str]) -> None:
    store.open_session("alpha", {"turns": 2})
    store.open_session("beta")
    store.create_run(
        NewRun(run_id="in-alpha", question="what?", model="openai/m1", session="alpha")
    )
    store.finish_run("in-alpha", status="completed", stop_reason="final", answer="that")
    store.memory_set(MemoryScope.session("alpha"), "k", [1])

    listed = cli_json(capsys, "sessions", "list", "--json")
    assert {s["name"] for s in listed} == {"alpha", "beta"}
    assert all({"name", "version", "created_at", "updated_at"} <= set(s) for s in listed)

    shown = cli_json(capsys, "sessions", "show", "alpha", "--json")
    assert shown["name"] == "alpha" and shown["data"] == {"turns": 2}
    assert shown["memory"] == {"k": [1]}
    assert [(r["run_id"], r["status"]) for r in shown["runs"]] == [("in-alpha", "completed")]

    assert main(["sessions", "show", "alpha"]) == 0
    out = capsys.readouterr().out
    assert "session: alpha (version 1)" in out and "in-alpha" in out and "memory keys: k" in out
    assert "in-alpha  completed   openai/m1" in out  # which model answered each question

    assert cli_json(capsys, "sessions", "delete", "alpha", "--json") == {
        "name": "alpha",
        "deleted": True,
    }
    assert [s["name"] for s in cli_json(capsys, "sessions", "list", "--json")] == ["beta"]
    assert store.memory_list(MemoryScope.session("alpha")) == []
    run = store.get_run("in-alpha")
    assert run is not None  # a session's runs outlive it


@pytest.mark.parametrize("action", ["show", "delete"])
def test_unknown_session_is_a_usage_error(action: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sessions", action, "ghost"]) == 2
    err = capsys.readouterr().err
    assert "no session 'ghost'" in err and "rlm sessions list" in err
