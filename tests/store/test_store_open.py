"""Opening a store: default location, URL handling and helpful failures."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from rlm_engine.errors import ConfigurationError
from rlm_engine.settings import Settings
from rlm_engine.store import StoreUnavailableError, default_store_url, open_store


def test_default_store_is_sqlite_under_home(tmp_path: Path) -> None:
    settings = Settings.from_env({"RLM_HOME": str(tmp_path)})
    assert default_store_url(settings.home) == f"sqlite:///{tmp_path / 'rlm.db'}"
    store = open_store(settings.store_url, settings.home)
    try:
        assert store.list_runs() == []
        assert (tmp_path / "rlm.db").exists()
    finally:
        store.close()


def test_in_memory_sqlite_works_for_throwaway_stores(tmp_path: Path) -> None:
    store = open_store("sqlite://", tmp_path)
    try:
        store.open_session("s")
        assert [s.name for s in store.list_sessions()] == ["s"]
    finally:
        store.close()


def test_unreachable_postgres_says_how_to_start_it(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a loopback port with nobody listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"postgresql://nobody:secret@127.0.0.1:{port}/test?connect_timeout=2"
    with pytest.raises(StoreUnavailableError, match="pg_ctlcluster") as caught:
        open_store(url, tmp_path)
    assert "secret" not in str(caught.value)


def test_unsupported_urls_are_configuration_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="unsupported store backend"):
        open_store("mysql://localhost/db", tmp_path)
    with pytest.raises(ConfigurationError):
        open_store("not a url", tmp_path)
