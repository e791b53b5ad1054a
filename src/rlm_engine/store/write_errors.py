"""The typed error for a store that cannot write: a full disk, a read-only file system or
database, or a lock held past the busy timeout. Recognised by module and name, so callers
need not import SQLAlchemy or a driver to tell."""

from __future__ import annotations

import errno

from rlm_engine.store.errors import StoreError

_DB_MODULES = ("sqlalchemy", "sqlite3", "psycopg", "psycopg2")
_WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM})
HINT = (
    "free space where RLM_HOME (or RLM_STORE_URL) lives, or make it writable, then continue "
    "the run with `rlm runs resume RUN_ID`; what was recorded before the failure is kept"
)


class StoreWriteError(StoreError):
    """The store could not record a write; nothing recorded before it is lost, and the run
    it belongs to can be resumed once the store can write again."""

    hint = HINT


def store_write_error(exc: BaseException) -> StoreWriteError | None:
    """The ``StoreWriteError`` that ``exc`` stands for, or None if it is not a failed write
    (programming errors and integrity conflicts keep their own types)."""
    if isinstance(exc, StoreError):
        return None
    if isinstance(exc, OSError) and exc.errno in _WRITE_ERRNOS:
        where = f" ({exc.filename})" if exc.filename else ""
        return StoreWriteError(f"the store could not write: {exc.strerror or exc}{where}")
    names = {cls.__name__ for cls in type(exc).__mro__}
    from_db = type(exc).__module__.split(".")[0] in _DB_MODULES
    if from_db and "OperationalError" in names:
        cause = getattr(exc, "orig", None) or exc
        first = str(cause).splitlines()[0] if str(cause) else type(cause).__name__
        return StoreWriteError(f"the store could not write: {first}")
    return None
