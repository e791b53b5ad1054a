"""Session state scopes in the lakehouse: `app:` shared by the app, `user:` by one user's
sessions, unprefixed by one session, `temp:` never written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlm_engine.errors import ConfigurationError
from rlm_engine.integrations.delta_lake import Lakehouse
from rlm_engine.jobs.session_state import DeltaSessionStore, join_state, split_state


@pytest.fixture
def lake(tmp_path: Path) -> Lakehouse:
    return Lakehouse(tmp_path / "lake")


def test_split_and_join_are_inverse_except_for_temp() -> None:
    state = {"app:theme": "dark", "user:lang": "fr", "step": 3, "temp:scratch": [1, 2]}
    app, user, session = split_state(state)
    assert (app, user, session) == ({"theme": "dark"}, {"lang": "fr"}, {"step": 3})
    assert join_state(app, user, session) == {"app:theme": "dark", "user:lang": "fr", "step": 3}


def test_a_new_session_loads_empty_and_temp_keys_are_never_written(lake: Lakehouse) -> None:
    store = DeltaSessionStore(lake, app_name="demo")
    assert store.load("s1", "alice") == {}
    store.save("s1", "alice", {"step": 1, "app:v": 2, "user:u": 3, "temp:secret": "x"})
    assert store.load("s1", "alice") == {"step": 1, "app:v": 2, "user:u": 3}
    for table in ("sessions", "app_state", "user_state"):
        for row in lake.read(table):
            assert "secret" not in str(row["state_json"]), table
    [session] = lake.read("sessions")
    assert (session["app_name"], session["user_id"]) == ("demo", "alice")
    assert json.loads(session["state_json"]) == {"step": 1}
    assert session["created_time"] is not None and session["updated_time"] is not None


def test_scopes_are_shared_as_far_as_their_prefix_says(lake: Lakehouse) -> None:
    store = DeltaSessionStore(lake, app_name="demo")
    store.save("s1", "alice", {"app:model": "m1", "user:name": "Alice", "topic": "tax"})
    # Another session of the same user sees the app and user scopes, not the session's.
    assert store.load("s2", "alice") == {"app:model": "m1", "user:name": "Alice"}
    # Another user sees only the app scope; another app sees nothing.
    assert store.load("s3", "bob") == {"app:model": "m1"}
    assert DeltaSessionStore(lake, app_name="other").load("s1", "alice") == {"topic": "tax"}


def test_app_and_user_keys_saved_elsewhere_are_kept(lake: Lakehouse) -> None:
    store = DeltaSessionStore(lake)
    first = store.load("s1", "alice")
    store.save("s2", "alice", {"app:a": 1, "user:b": 2})
    # s1 saves state it loaded before s2 wrote: s2's shared keys survive, s1's land too.
    store.save("s1", "alice", {**first, "app:c": 3, "k": "v"})
    assert store.load("s1", "alice") == {"app:a": 1, "app:c": 3, "user:b": 2, "k": "v"}
    # A session key left out is deleted from that session.
    store.save("s1", "alice", {"app:a": 1})
    assert store.load("s1", "alice") == {"app:a": 1, "app:c": 3, "user:b": 2}


def test_only_the_scopes_that_changed_are_written(lake: Lakehouse) -> None:
    store = DeltaSessionStore(lake)
    store.save("s1", "alice", {"app:a": 1, "user:b": 2, "k": 1})
    versions = {t: lake.version(t) for t in ("sessions", "app_state", "user_state")}
    created = lake.read("sessions")[0]["created_time"]
    store.save("s1", "alice", {"app:a": 1, "user:b": 2, "k": 2, "temp:t": 9})
    assert lake.version("app_state") == versions["app_state"]
    assert lake.version("user_state") == versions["user_state"]
    assert lake.version("sessions") == (versions["sessions"] or 0) + 1
    assert lake.read("sessions")[0]["created_time"] == created  # kept across saves
    store.save("s1", "alice", {"app:a": 1, "user:b": 2, "k": 2})
    assert lake.version("sessions") == (versions["sessions"] or 0) + 1  # nothing changed


def test_state_that_is_not_json_is_a_configuration_error(lake: Lakehouse) -> None:
    store = DeltaSessionStore(lake)
    with pytest.raises(ConfigurationError, match="not JSON") as error:
        store.save("s1", "alice", {"k": object()})
    assert "temp:" in error.value.hint
    store.save("s1", "alice", {"k": 1, "temp:obj": object()})  # temp: holds anything
    assert store.load("s1", "alice") == {"k": 1}
