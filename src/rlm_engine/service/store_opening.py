"""Opening the store the settings name, with errors that say which setting to fix.

Shared by every edge (the CLI, the server, jobs): each opens the store the same way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rlm_engine.errors import ConfigurationError
from rlm_engine.settings import Settings
from rlm_engine.store.errors import StoreUnavailableError

if TYPE_CHECKING:
    from rlm_engine.store.sql_store import SqlStore


class StoreAccessError(ConfigurationError):
    """The store (`RLM_HOME` or `RLM_STORE_URL`) cannot be opened: a configuration error,
    found before any run starts (exit status 2)."""


def _store_hint(settings: Settings) -> str:
    if settings.store_url:
        return "check RLM_STORE_URL (is the database up, and the URL right?)"
    return (
        f"RLM_HOME ({settings.home}) must be a writable directory; "
        "fix its permissions or set RLM_HOME to another one"
    )


def open_settings_store(settings: Settings) -> SqlStore:
    """The store the settings name: `RLM_STORE_URL`, else SQLite under `RLM_HOME`."""
    # SQLAlchemy (and a database driver) load only when a store is opened.
    from rlm_engine.store.factory import open_store

    try:
        return open_store(settings.store_url, settings.home)
    except StoreUnavailableError as exc:
        raise StoreAccessError(str(exc), hint=_store_hint(settings)) from exc
    except OSError as exc:
        # Creating RLM_HOME itself failed (a read-only disk, a file in the way).
        where = exc.filename or settings.home
        why = exc.strerror or str(exc)
        raise StoreAccessError(
            f"cannot open the store under {where}: {why}", hint=_store_hint(settings)
        ) from exc
