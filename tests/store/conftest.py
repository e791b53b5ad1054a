"""Store fixtures: every contract test runs against SQLite and against the real Postgres.

Postgres: `RLM_TEST_POSTGRES_URL`, default postgresql+psycopg://postgres@127.0.0.1:5432/test.
Each test gets its own schema (dropped afterwards), so parallel and CI runs never collide.
"""

from __future__ import annotations

import hashlib
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from rlm_engine.store import SqlStore, open_store

POSTGRES_URL = os.environ.get(
    "RLM_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
_START_HINT = (
    "The store contract tests need the Postgres server at {url} (they never skip it). "
    "Start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start "
    "-- or point RLM_TEST_POSTGRES_URL at a server with a `test` database. Error: {error}"
)


def _admin_engine() -> sa.Engine:
    engine = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as exc:
        engine.dispose()
        pytest.fail(_START_HINT.format(url=POSTGRES_URL, error=exc.orig), pytrace=False)
    return engine


_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def _drop_leftovers(conn: sa.Connection) -> None:
    """Drop schemas of test runs on this host that were killed before cleaning up."""
    names = conn.execute(
        sa.text("SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE :p"),
        {"p": f"rlm_test_{_HOST}_%"},
    ).scalars()
    for name in names:
        pid = int(name.split("_")[3])
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
        except PermissionError:
            pass


@pytest.fixture
def postgres_schema_url() -> Iterator[str]:
    """A URL whose connections live in a fresh, private schema."""
    schema = f"rlm_test_{_HOST}_{os.getpid()}_{uuid.uuid4().hex[:10]}"
    admin = _admin_engine()
    with admin.connect() as conn:
        _drop_leftovers(conn)
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = sa.make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty store, once per backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store' / 'rlm.db'}"
    return request.getfixturevalue("postgres_schema_url")


@pytest.fixture
def store_home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def store(store_url: str, store_home: Path) -> Iterator[SqlStore]:
    """An opened, migrated store (small inline limit, so blob offloading gets exercised)."""
    opened = open_store(store_url, store_home, inline_limit=1024)
    try:
        yield opened
    finally:
        opened.close()
