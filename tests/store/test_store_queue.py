"""The durable run queue: queued runs wait unowned, `claim_next` hands each run to exactly
one claimer (threads, store instances, processes), dead owners' auto-resume runs come back,
and cancellation is immediate for queued runs and cooperative for running ones."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa
from store_support import new_run, python

from rlm_engine.store import NewRun, RunNotFoundError, RunNotResumableError, SqlStore, open_store
from rlm_engine.store.tables import runs

DEAD_PID = 2**22 + 12345  # above the kernel's pid limit: never a live process


def _set_run(store: SqlStore, run_id: str, **values: object) -> None:
    with store.engine.begin() as conn:
        conn.execute(sa.update(runs).where(runs.c.run_id == run_id).values(**values))


def _queue(
    store: SqlStore, run_id: str, created_at: float, *, tenant: str = "local", auto: bool = False
) -> None:
    store.create_run(
        NewRun(
            run_id=run_id,
            question="q",
            queued=True,
            created_at=created_at,
            tenant=tenant,
            auto_resume=auto,
        )
    )


def test_a_queued_run_waits_without_owner_or_heartbeat(store: SqlStore) -> None:
    _queue(store, "q1", 1.0, tenant="acme", auto=True)
    run = store.get_run("q1")
    assert run is not None and run.status == "queued" and run.tenant == "acme"
    assert (run.owner_host, run.owner_pid, run.heartbeat_at) == (None, None, None)
    assert run.attempt == 1 and run.finished_at is None
    assert store.mark_interrupted_runs(stale_after_s=0) == []
    assert store.get_run("q1").status == "queued"  # type: ignore[union-attr]


def test_claim_next_takes_the_oldest_queued_run(store: SqlStore) -> None:
    _queue(store, "young", 20.0)
    _queue(store, "old", 10.0)
    new_run(store, "busy", created_at=1.0)  # running, owned by this live process
    before = time.time()
    first = store.claim_next()
    assert first is not None and first.run_id == "old" and first.status == "running"
    assert first.owner_pid is not None and first.heartbeat_at is not None
    assert first.heartbeat_at >= before and first.attempt == 1
    second = store.claim_next()
    assert second is not None and second.run_id == "young"
    assert store.claim_next() is None
    assert store.get_run("busy").status == "running"  # type: ignore[union-attr]


def test_only_auto_resume_interrupted_runs_are_claimed_again(store: SqlStore) -> None:
    for run_id, auto in (("auto", True), ("manual", False)):
        store.create_run(NewRun(run_id=run_id, question="q", auto_resume=auto))
        _set_run(store, run_id, status="interrupted", stop_reason="interrupted")
    claimed = store.claim_next()
    assert claimed is not None and claimed.run_id == "auto"
    assert claimed.attempt == 2 and claimed.stop_reason is None
    assert store.claim_next() is None
    assert store.get_run("manual").status == "interrupted"  # type: ignore[union-attr]


def test_a_dead_owners_auto_resume_run_is_claimable_at_once(store: SqlStore) -> None:
    store.create_run(NewRun(run_id="orphan", question="q", auto_resume=True))
    _set_run(store, "orphan", owner_pid=DEAD_PID, owner_token=f"{DEAD_PID}:1")
    claimed = store.claim_next(stale_after_s=3600)  # the pid is checked, not the heartbeat
    assert claimed is not None and claimed.run_id == "orphan" and claimed.attempt == 2
    assert claimed.owner_pid != DEAD_PID


def test_another_hosts_run_is_claimable_once_its_heartbeat_is_stale(store: SqlStore) -> None:
    store.create_run(NewRun(run_id="far", question="q", auto_resume=True))
    _set_run(store, "far", owner_host="elsewhere", heartbeat_at=time.time() - 5)
    assert store.claim_next(stale_after_s=15) is None
    assert store.get_run("far").status == "running"  # type: ignore[union-attr]
    _set_run(store, "far", heartbeat_at=time.time() - 60)
    claimed = store.claim_next(stale_after_s=15)
    assert claimed is not None and claimed.run_id == "far" and claimed.attempt == 2


def test_full_tenants_are_passed_over(store: SqlStore) -> None:
    _queue(store, "a1", 1.0, tenant="a")
    _queue(store, "b1", 2.0, tenant="b")
    _queue(store, "c1", 3.0, tenant="c")
    claimed = store.claim_next(tenants_full={"a", "b"})
    assert claimed is not None and claimed.run_id == "c1"
    assert store.claim_next(tenants_full=["a", "b"]) is None
    claimed = store.claim_next(tenants_full=["b"])
    assert claimed is not None and claimed.run_id == "a1"


def test_cancelling_a_queued_run_is_immediate_and_final_for_the_queue(store: SqlStore) -> None:
    _queue(store, "q", 1.0, auto=True)
    cancelled = store.request_cancel("q")
    assert cancelled.status == "cancelled" and cancelled.stop_reason == "cancelled"
    assert cancelled.finished_at is not None
    assert store.claim_next() is None
    assert store.request_cancel("q") == cancelled  # terminal: unchanged
    with pytest.raises(RunNotFoundError):
        store.request_cancel("missing")


def test_cancelling_a_running_run_asks_its_owner(store: SqlStore) -> None:
    new_run(store, "r")
    flagged = store.request_cancel("r")
    assert flagged.status == "running" and flagged.cancel_requested is True
    done = store.finish_run("r", status="cancelled", stop_reason="cancelled")
    assert done.status == "cancelled" and done.finished_at is not None
    assert store.request_cancel("r") == done
    new_run(store, "finished")
    completed = store.finish_run("finished", status="completed", stop_reason="final")
    assert store.request_cancel("finished") == completed


def test_an_interrupted_run_is_cancelled_at_once(store: SqlStore) -> None:
    store.create_run(NewRun(run_id="i", question="q", auto_resume=True))
    _set_run(store, "i", status="interrupted")
    assert store.request_cancel("i").status == "cancelled"
    assert store.claim_next() is None


def test_a_run_whose_owner_died_after_a_cancel_request_ends_cancelled(store: SqlStore) -> None:
    store.create_run(NewRun(run_id="c", question="q", auto_resume=True))
    store.request_cancel("c")
    _set_run(store, "c", owner_pid=DEAD_PID, owner_token=f"{DEAD_PID}:1")
    assert store.claim_next() is None  # marked, but never resumed by the queue
    run = store.get_run("c")
    assert run is not None and run.status == "cancelled" and run.stop_reason == "cancelled"


def test_explicit_resume_takes_cancelled_runs_never_queued_ones(store: SqlStore) -> None:
    _queue(store, "q", 1.0)
    with pytest.raises(RunNotResumableError, match="queued") as refused:
        store.claim_run("q")
    assert refused.value.hint
    with pytest.raises(RunNotResumableError, match="queued"):
        store.claim_run("q", statuses=("queued",))  # not even when asked for
    new_run(store, "c")
    store.request_cancel("c")
    store.finish_run("c", status="cancelled", stop_reason="cancelled")
    resumed = store.claim_run("c")
    assert resumed.status == "running" and resumed.attempt == 2
    assert resumed.cancel_requested is False


def _drain(store: SqlStore, barrier: threading.Barrier, won: list[str]) -> None:
    barrier.wait(timeout=30)
    while (run := store.claim_next()) is not None:
        won.append(run.run_id)


def _queue_many(store: SqlStore, count: int) -> set[str]:
    ids = {f"job-{i:03d}" for i in range(count)}
    for i, run_id in enumerate(sorted(ids)):
        _queue(store, run_id, 1000.0 + i)
    return ids


def _assert_each_claimed_once(ids: set[str], won: list[str]) -> None:
    counts = Counter(won)
    assert set(counts) == ids
    assert [run_id for run_id, n in counts.items() if n != 1] == []


def test_concurrent_threads_claim_each_run_exactly_once(store: SqlStore) -> None:
    ids = _queue_many(store, 40)
    barrier = threading.Barrier(6)
    won: list[str] = []
    threads = [threading.Thread(target=_drain, args=(store, barrier, won)) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    _assert_each_claimed_once(ids, won)


def test_two_store_instances_claim_each_run_exactly_once(
    store: SqlStore, store_url: str, store_home: Path
) -> None:
    ids = _queue_many(store, 40)
    other = open_store(store_url, store_home)
    try:
        barrier = threading.Barrier(6)
        won: list[str] = []
        threads = [
            threading.Thread(target=_drain, args=(instance, barrier, won))
            for instance in (store, other) * 3
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    finally:
        other.close()
    _assert_each_claimed_once(ids, won)


_CLAIMER = """
    import sys
    from pathlib import Path
    from rlm_engine.store import open_store
    store = open_store(sys.argv[1], Path(sys.argv[2]))
    print("ready", flush=True)
    sys.stdin.readline()  # go
    while (run := store.claim_next()) is not None:
        print(run.run_id, flush=True)
    store.close()
"""


def test_two_processes_claim_each_run_exactly_once(
    store: SqlStore, store_url: str, store_home: Path
) -> None:
    ids = _queue_many(store, 30)
    children = [python(_CLAIMER, store_url, str(store_home)) for _ in range(2)]
    for child in children:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    for child in children:
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()
    won: list[str] = []
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        won.extend(out.split())
    _assert_each_claimed_once(ids, won)


# -- claiming several runs in one transaction ---------------------------------------------


def test_claim_batch_takes_the_oldest_runs_up_to_its_limit(store: SqlStore) -> None:
    for i, run_id in enumerate(("c", "a", "b", "d")):
        _queue(store, run_id, 10.0 + i)
    store.create_run(NewRun(run_id="auto", question="q", auto_resume=True, created_at=1.0))
    _set_run(store, "auto", status="interrupted", stop_reason="interrupted")
    claimed = store.claim_batch(3)
    assert [run.run_id for run in claimed] == ["auto", "c", "a"]
    assert {run.status for run in claimed} == {"running"}
    assert [run.attempt for run in claimed] == [2, 1, 1]
    assert all(run.owner_pid is not None and run.heartbeat_at is not None for run in claimed)
    assert [run.run_id for run in store.claim_batch(5)] == ["b", "d"]
    assert store.claim_batch(5) == []
    assert store.claim_batch(0) == []


def test_claim_batch_never_takes_a_tenant_past_its_limit(store: SqlStore) -> None:
    store.create_run(NewRun(run_id="busy", question="q", tenant="a"))  # running, ours (alive)
    for i in range(4):
        _queue(store, f"a{i}", 10.0 + i, tenant="a")
    _queue(store, "b0", 20.0, tenant="b")
    _queue(store, "b1", 21.0, tenant="b")
    _queue(store, "c0", 22.0, tenant="c")
    claimed = store.claim_batch(10, tenant_limit=2)
    assert [run.run_id for run in claimed] == ["a0", "b0", "b1", "c0"]
    assert store.count_running_by_tenant() == {"a": 2, "b": 2, "c": 1}
    assert store.claim_batch(10, tenant_limit=2) == []
    store.finish_run("busy", status="completed", stop_reason="final")
    assert [run.run_id for run in store.claim_batch(10, tenant_limit=2)] == ["a1"]


def test_claim_batch_resumes_dead_owners_runs_and_skips_cancelled_ones(store: SqlStore) -> None:
    store.create_run(NewRun(run_id="orphan", question="q", auto_resume=True, created_at=1.0))
    _set_run(store, "orphan", owner_pid=DEAD_PID, owner_token=f"{DEAD_PID}:1")
    store.create_run(NewRun(run_id="far", question="q", auto_resume=True, created_at=2.0))
    _set_run(store, "far", owner_host="elsewhere", heartbeat_at=time.time() - 5)
    _queue(store, "gone", 3.0)
    store.request_cancel("gone")
    claimed = store.claim_batch(10, stale_after_s=15)
    assert [(run.run_id, run.attempt) for run in claimed] == [("orphan", 2)]
    assert store.get_run("far").status == "running"  # type: ignore[union-attr]
    _set_run(store, "far", heartbeat_at=time.time() - 60)
    assert [run.run_id for run in store.claim_batch(10, stale_after_s=15)] == ["far"]
    assert store.get_run("gone").status == "cancelled"  # type: ignore[union-attr]


def _drain_batches(store: SqlStore, barrier: threading.Barrier, won: list[str]) -> None:
    barrier.wait(timeout=30)
    while batch := store.claim_batch(3):
        won.extend(run.run_id for run in batch)


def test_concurrent_batch_claims_take_each_run_exactly_once(
    store: SqlStore, store_url: str, store_home: Path
) -> None:
    ids = _queue_many(store, 40)
    other = open_store(store_url, store_home)
    try:
        barrier = threading.Barrier(6)
        won: list[str] = []
        threads = [
            threading.Thread(target=_drain_batches, args=(instance, barrier, won))
            for instance in (store, other) * 3
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    finally:
        other.close()
    _assert_each_claimed_once(ids, won)


_BATCH_CLAIMER = """
    import sys
    from pathlib import Path
    from rlm_engine.store import open_store
    store = open_store(sys.argv[1], Path(sys.argv[2]))
    print("ready", flush=True)
    sys.stdin.readline()  # go
    while batch := store.claim_batch(4):
        for run in batch:
            print(run.run_id, flush=True)
    store.close()
"""


def test_two_processes_claim_batches_each_run_exactly_once(
    store: SqlStore, store_url: str, store_home: Path
) -> None:
    ids = _queue_many(store, 30)
    children = [python(_BATCH_CLAIMER, store_url, str(store_home)) for _ in range(2)]
    for child in children:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    for child in children:
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()
    won: list[str] = []
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        won.extend(out.split())
    _assert_each_claimed_once(ids, won)
