"""`open_store`: from a URL (or the default SQLite file under RLM_HOME) to a migrated store."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.exc import OperationalError

from rlm_engine.store import migrate
from rlm_engine.store.blobs import BlobStore, LocalBlobStore
from rlm_engine.store.connect import create_store_engine, display_url
from rlm_engine.store.errors import StoreUnavailableError
from rlm_engine.store.sql_base import DEFAULT_INLINE_LIMIT
from rlm_engine.store.sql_store import SqlStore
from rlm_engine.store.sqlite_reads import sqlite_path

BLOB_DIRNAME = "blobs"
_PG_HINT = (
    "start it (on Debian: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main "
    "start) or fix RLM_STORE_URL"
)


def default_store_url(home: Path) -> str:
    """The default store: one SQLite file in RLM_HOME."""
    return f"sqlite:///{sqlite_path(home)}"


def open_store(
    url: str | None,
    home: Path,
    *,
    blobs: BlobStore | None = None,
    inline_limit: int = DEFAULT_INLINE_LIMIT,
) -> SqlStore:
    """Open (creating and migrating as needed) the store at `url`.

    `url` is `Settings.store_url` (RLM_STORE_URL); None means `sqlite:///<home>/rlm.db`.
    Blobs go to `<home>/blobs` unless `blobs` is given. Typical use at an edge:
    `open_store(settings.store_url, settings.home)`.
    """
    target = url or default_store_url(home)
    engine = create_store_engine(target)
    try:
        migrate.upgrade(engine)
    except OperationalError as exc:
        engine.dispose()
        hint = _PG_HINT if engine.dialect.name == "postgresql" else "check the path and rights"
        raise StoreUnavailableError(
            f"cannot open the store at {display_url(target)}: {exc.orig}; {hint}"
        ) from exc
    return SqlStore(
        engine,
        blobs or LocalBlobStore(home.expanduser() / BLOB_DIRNAME),
        inline_limit=inline_limit,
    )
