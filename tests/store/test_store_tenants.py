"""Tenants: runs and sessions belong to one; listings filter by it and page by cursor; a
store from before tenants upgrades in place with everything the local tenant's."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command

from rlm_engine.store import JournalConflictError, NewRun, SqlStore, open_store
from rlm_engine.store.connect import create_store_engine
from rlm_engine.store.migrate import _config, upgrade  # pyright: ignore[reportPrivateUsage]
from rlm_engine.store.sql_run_list import list_runs_query
from rlm_engine.store.tables import runs, sessions


def _run(store: SqlStore, run_id: str, tenant: str, created_at: float) -> None:
    store.create_run(NewRun(run_id=run_id, question="q", tenant=tenant, created_at=created_at))


def test_runs_belong_to_a_tenant_the_local_one_by_default(store: SqlStore) -> None:
    plain = store.create_run(NewRun(run_id="plain", question="q"))
    assert (plain.tenant, plain.auto_resume, plain.cancel_requested) == ("local", False, False)
    made = store.create_run(NewRun(run_id="acme-1", question="q", tenant="acme", auto_resume=True))
    assert (made.tenant, made.auto_resume) == ("acme", True)
    assert store.get_run("acme-1") == made
    assert made.user is None
    asked = store.create_run(NewRun(run_id="acme-2", question="q", tenant="acme", user="ann"))
    # Kept so that another process resuming the run acts for the same user.
    assert asked.user == "ann"
    assert store.get_run("acme-2") == asked


def test_list_runs_by_tenant_and_count_them_by_status(store: SqlStore) -> None:
    for i, (run_id, tenant) in enumerate([("a1", "a"), ("b1", "b"), ("a2", "a"), ("a3", "a")]):
        _run(store, run_id, tenant, 1000.0 + i)
    store.finish_run("a3", status="completed", stop_reason="final")
    assert [r.run_id for r in store.list_runs(tenant="a")] == ["a3", "a2", "a1"]
    assert [r.run_id for r in store.list_runs(tenant="b")] == ["b1"]
    assert [r.run_id for r in store.list_runs(tenant="nobody")] == []
    assert [r.run_id for r in store.list_runs(tenant="a", status="running")] == ["a2", "a1"]
    assert len(store.list_runs()) == 4
    assert store.count_runs(tenant="a", statuses=("running",)) == 2
    assert store.count_runs(tenant="a", statuses=("running", "completed")) == 3
    assert store.count_runs(tenant=None, statuses=("running",)) == 3
    assert store.count_runs(tenant="b", statuses=("queued",)) == 0
    assert store.count_runs(tenant="a", statuses=()) == 0


def test_the_cursor_pages_through_runs_with_equal_creation_times(store: SqlStore) -> None:
    # Five runs, three created at the same instant: the run id breaks the tie.
    times = {"r1": 1.0, "r2": 2.0, "r3": 2.0, "r4": 2.0, "r5": 3.0}
    for run_id, created in times.items():
        _run(store, run_id, "t", created)
    _run(store, "other", "u", 2.0)
    pages: list[list[str]] = []
    before: tuple[float, str] | None = None
    while True:
        page = store.list_runs(2, tenant="t", before=before)
        if not page:
            break
        pages.append([r.run_id for r in page])
        before = (page[-1].created_at, page[-1].run_id)
    assert pages == [["r5", "r4"], ["r3", "r2"], ["r1"]]
    assert [r.run_id for r in store.list_runs(before=(2.0, "r3"))] == ["r2", "other", "r1"]
    assert store.list_runs(before=(1.0, "r1")) == []


def test_listing_a_tenants_runs_uses_its_index(store: SqlStore) -> None:
    statement = list_runs_query(50, tenant="t", before=(5.0, "r"))  # what `list_runs` runs
    with store.engine.connect() as conn:
        indexes = {ix["name"]: ix["column_names"] for ix in sa.inspect(conn).get_indexes("runs")}
        assert indexes["ix_runs_tenant_created_at"] == ["tenant", "created_at"]
        compiled = str(statement.compile(conn, compile_kwargs={"literal_binds": True}))
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SET enable_seqscan = off")  # an empty table: no cheaper plan
            plan = conn.exec_driver_sql(f"EXPLAIN {compiled}").scalars().all()
        else:
            plan = [row[-1] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}")]
    assert any("ix_runs_tenant_created_at" in line for line in plan), plan


def test_sessions_belong_to_a_tenant(store: SqlStore) -> None:
    mine = store.open_session("ses_1", {"name": "mine"}, tenant="acme")
    assert mine.tenant == "acme"
    assert store.open_session("ses_1", tenant="acme") == mine
    with pytest.raises(JournalConflictError, match="taken") as refused:
        store.open_session("ses_1", tenant="other")
    assert "acme" not in str(refused.value) and refused.value.hint
    store.open_session("ses_2", tenant="other")
    store.open_session("plain")
    assert store.get_session("plain").tenant == "local"  # type: ignore[union-attr]
    assert [s.name for s in store.list_sessions(tenant="acme")] == ["ses_1"]
    assert [s.name for s in store.list_sessions(tenant="other")] == ["ses_2"]
    assert {s.name for s in store.list_sessions()} == {"ses_1", "ses_2", "plain"}


def test_a_run_cannot_join_another_tenants_session(store: SqlStore) -> None:
    store.open_session("ses_x", tenant="acme")
    with pytest.raises(JournalConflictError):
        store.create_run(NewRun(run_id="intruder", question="q", session="ses_x", tenant="evil"))
    assert store.get_run("intruder") is None
    run = store.create_run(NewRun(run_id="ok", question="q", session="ses_x", tenant="acme"))
    assert run.session == "ses_x"
    made = store.create_run(NewRun(run_id="new", question="q", session="ses_new", tenant="t"))
    assert made.session == "ses_new"
    assert store.get_session("ses_new").tenant == "t"  # type: ignore[union-attr]


def _old_run(conn: sa.Connection) -> None:
    conn.execute(
        sa.text(
            "INSERT INTO sessions (name, version, data, created_at, updated_at) "
            "VALUES ('s', 1, '{}', 1.0, 1.0)"
        )
    )
    conn.execute(
        runs.insert().values(
            run_id="old",
            session="s",
            question="q",
            model="m",
            sub_model="m",
            settings={},
            status="interrupted",
            stop_reason="interrupted",
            input_tokens=0,
            output_tokens=0,
            cached_tokens=0,
            sub_calls=0,
            iterations=0,
            created_at=1.0,
            updated_at=1.0,
            attempt=1,
            last_event_seq=-1,
        )
    )


def test_a_store_from_before_tenants_upgrades_in_place(store_url: str, tmp_path: Path) -> None:
    engine = create_store_engine(store_url)
    try:
        with engine.begin() as conn:
            command.upgrade(_config(conn), "0003")
            _old_run(conn)
        upgrade(engine)
        store = open_store(store_url, tmp_path / "home")
        try:
            old = store.get_run("old")
            assert old is not None
            assert (old.tenant, old.auto_resume, old.cancel_requested) == ("local", False, False)
            assert [r.run_id for r in store.list_runs(tenant="local")] == ["old"]
            assert store.get_session("s").tenant == "local"  # type: ignore[union-attr]
            assert store.any_api_keys() is False
            assert store.claim_next() is None  # an old interrupted run is not auto-resumed
        finally:
            store.close()
        with engine.begin() as conn:
            command.downgrade(_config(conn), "0003")
            inspector = sa.inspect(conn)
            assert "tenant" not in {c["name"] for c in inspector.get_columns("runs")}
            assert "tenant" not in {c["name"] for c in inspector.get_columns("sessions")}
            assert not inspector.has_table("api_keys")
            assert conn.execute(sa.select(sessions.c.name)).scalars().all() == ["s"]
    finally:
        engine.dispose()
