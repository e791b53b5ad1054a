"""Opening the durable store from the CLI, and the lookups every command shares."""

from __future__ import annotations

import json
from collections.abc import Generator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from rlm_engine.errors import ConfigurationError
from rlm_engine.settings import Settings
from rlm_engine.store.records import Run

if TYPE_CHECKING:  # the store's modules (and SQLAlchemy) load when a store opens
    from rlm_engine.store.protocol import Store
    from rlm_engine.store.sql_store import SqlStore


class UnknownRunError(ConfigurationError):
    """A run id the store does not hold (a usage error: exit status 2)."""

    def __init__(self, run_id: str) -> None:
        super().__init__(f"no run {run_id!r} in the store; `rlm runs list` shows the runs")
        self.run_id = run_id


class UnknownSessionError(ConfigurationError):
    """A session name the store does not hold (a usage error: exit status 2)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no session {name!r}; `rlm sessions list` shows the sessions")
        self.name = name


def open_cli_store(settings: Settings) -> SqlStore:
    """The store the settings name: `RLM_STORE_URL`, else SQLite under `RLM_HOME`."""
    from rlm_engine.service.store_opening import open_settings_store

    return open_settings_store(settings)


@contextmanager
def cli_store(settings: Settings | None = None) -> Generator[SqlStore, None, None]:
    """`open_cli_store` for one command, closed when the command ends."""
    store = open_cli_store(settings or Settings.from_env())
    try:
        yield store
    finally:
        store.close()


def require_run(store: Store, run_id: str) -> Run:
    """The run, or `UnknownRunError`."""
    run = store.get_run(run_id)
    if run is None:
        raise UnknownRunError(run_id)
    return run


def print_json(value: Any) -> None:
    """One JSON document on stdout (non-ASCII kept; anything odd as a string)."""
    print(json.dumps(value, ensure_ascii=False, default=str))
