"""Session state in the lakehouse, with the seed's state scopes.

A state key's prefix says how far it is shared: `app:k` by every session of the app,
`user:k` by one user's sessions, `temp:k` by nobody (it lives for one invocation and is
never written), and an unprefixed key by one session. Each scope is its own table
(`app_state`, `user_state`, `sessions`), so sharing needs no copying.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any, cast

from rlm_engine.errors import ConfigurationError
from rlm_engine.integrations.tables import TableStore

APP_PREFIX = "app:"
USER_PREFIX = "user:"
TEMP_PREFIX = "temp:"


def split_state(
    state: Mapping[str, Any],
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """`(app, user, session)` with the prefixes stripped; `temp:` keys are dropped."""
    app: dict[str, Any] = {}
    user: dict[str, Any] = {}
    session: dict[str, Any] = {}
    for key, value in state.items():
        if key.startswith(TEMP_PREFIX):
            continue
        if key.startswith(APP_PREFIX):
            app[key[len(APP_PREFIX) :]] = value
        elif key.startswith(USER_PREFIX):
            user[key[len(USER_PREFIX) :]] = value
        else:
            session[key] = value
    return app, user, session


def join_state(
    app: Mapping[str, Any], user: Mapping[str, Any], session: Mapping[str, Any]
) -> dict[str, Any]:
    """The inverse of `split_state`: one mapping with the prefixes restored."""
    joined: dict[str, Any] = dict(session)
    joined.update({APP_PREFIX + k: v for k, v in app.items()})
    joined.update({USER_PREFIX + k: v for k, v in user.items()})
    return joined


def _dumps(state: Mapping[str, Any], what: str) -> str:
    try:
        return json.dumps(state, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(
            f"{what} state is not JSON: {exc}",
            hint="session state holds JSON values only (str, number, bool, None, list, dict); "
            "keep other objects under a temp: key",
        ) from exc


def _loads(rows: list[dict[str, Any]]) -> dict[str, Any]:
    if not rows or rows[0].get("state_json") is None:
        return {}
    loaded: Any = json.loads(str(rows[0]["state_json"]))
    if not isinstance(loaded, dict):
        return {}
    return {str(k): v for k, v in cast(dict[Any, Any], loaded).items()}


class DeltaSessionStore:
    """Loads and saves a session's joined state across the three scope tables.

    `save` writes the session scope as given (a key left out is deleted), while the app and
    user scopes are updated key by key (a key left out is kept): other sessions share them,
    and a session that loaded them earlier must not erase what another one added since."""

    def __init__(self, lake: TableStore, app_name: str = "rlm") -> None:
        self.lake = lake
        self.app_name = app_name

    def _rows(
        self, session_id: str, user_id: str
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
        app = self.lake.read("app_state", where={"app_name": self.app_name})
        user = self.lake.read("user_state", where={"app_name": self.app_name, "user_id": user_id})
        session = self.lake.read("sessions", where={"session_id": session_id})
        return app, user, session

    def load(self, session_id: str, user_id: str) -> dict[str, Any]:
        """The session's state with its app and user scopes joined in ({} for a new one)."""
        app, user, session = self._rows(session_id, user_id)
        return join_state(_loads(app), _loads(user), _loads(session))

    def save(self, session_id: str, user_id: str, state: Mapping[str, Any]) -> None:
        """Persist `state` (never its `temp:` keys): one merge per scope that changed."""
        app_new, user_new, session_new = split_state(state)
        app_rows, user_rows, session_rows = self._rows(session_id, user_id)
        app_old, user_old = _loads(app_rows), _loads(user_rows)
        now = time.time()
        app_next = {**app_old, **app_new}
        if app_next != app_old:
            self.lake.merge(
                "app_state",
                [
                    {
                        "app_name": self.app_name,
                        "state_json": _dumps(app_next, "app"),
                        "updated_time": now,
                    }
                ],
            )
        user_next = {**user_old, **user_new}
        if user_next != user_old:
            self.lake.merge(
                "user_state",
                [
                    {
                        "app_name": self.app_name,
                        "user_id": user_id,
                        "state_json": _dumps(user_next, "user"),
                        "updated_time": now,
                    }
                ],
            )
        old = session_rows[0] if session_rows else None
        session_json = _dumps(session_new, "session")
        if old is None or old.get("state_json") != session_json or old.get("user_id") != user_id:
            created = old.get("created_time") if old else None
            self.lake.merge(
                "sessions",
                [
                    {
                        "session_id": session_id,
                        "app_name": self.app_name,
                        "user_id": user_id,
                        "state_json": session_json,
                        "created_time": created if created is not None else now,
                        "updated_time": now,
                    }
                ],
            )
