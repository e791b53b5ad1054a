"""Events: append-only, numbered by the store per run, unique under concurrent appenders."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import pytest
from store_support import new_run, python

from rlm_engine.events import CellStarted, Final, IterationStarted, RunStarted
from rlm_engine.store import RunNotFoundError, SqlStore, open_store


def test_events_are_numbered_per_run(store: SqlStore) -> None:
    new_run(store, "a")
    new_run(store, "b")
    assert store.append_event(RunStarted(run_id="a", question="q", model="m", sub_model="s")) == 0
    assert store.append_event(IterationStarted(run_id="b", iteration=1)) == 0
    batch = [
        IterationStarted(run_id="a", iteration=1),
        CellStarted(run_id="b", node_id="r/1", depth=1, iteration=1, cell_index=0, code="x"),
        Final(run_id="a", answer="42", fields={"n": 42}),
    ]
    assert store.append_events(batch) == [1, 1, 2]
    stored = store.list_events("a")
    assert [(e.seq, e.type) for e in stored] == [
        (0, "run_started"),
        (1, "iteration_started"),
        (2, "final"),
    ]
    assert stored[2].body["fields"] == {"n": 42}
    child = store.list_events("b")[1]
    assert (child.node_id, child.depth, child.body["code"]) == ("r/1", 1, "x")
    assert [e.seq for e in store.list_events("a", after_seq=0, limit=1)] == [1]
    run = store.get_run("a")
    assert run is not None and run.last_event_seq == 2


def test_events_need_their_run(store: SqlStore) -> None:
    with pytest.raises(RunNotFoundError):
        store.append_event(IterationStarted(run_id="nobody", iteration=1))
    assert store.append_events([]) == []


_APPENDER = """
    import sys
    from pathlib import Path
    from rlm_engine.events import IterationStarted
    from rlm_engine.store import open_store
    store = open_store(sys.argv[1], Path(sys.argv[2]))
    print("ready", flush=True)
    sys.stdin.readline()  # start together
    writer = int(sys.argv[4])
    for i in range(int(sys.argv[3])):
        store.append_event(IterationStarted(run_id="shared", iteration=writer * 1000 + i))
    store.close()
"""


def test_concurrent_appends_from_processes_and_threads_get_unique_seqs(
    store_url: str, store_home: Path, store: SqlStore
) -> None:
    new_run(store, "shared")
    per_writer = 30
    procs = [
        python(_APPENDER, store_url, str(store_home), str(per_writer), str(writer))
        for writer in range(1)
    ]
    errors: list[BaseException] = []
    go = threading.Event()

    def append_from_thread(writer: int) -> None:
        local = open_store(store_url, store_home)
        go.wait(timeout=60)
        try:
            for i in range(per_writer):
                local.append_event(IterationStarted(run_id="shared", iteration=writer * 1000 + i))
        except BaseException as exc:  # reported below, with the failing backend
            errors.append(exc)
        finally:
            local.close()

    threads = [threading.Thread(target=append_from_thread, args=(w,)) for w in (1, 2, 3)]
    for thread in threads:
        thread.start()
    for proc in procs:
        assert proc.stdin is not None and proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
    go.set()
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    for thread in threads:
        thread.join(timeout=60)
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    assert errors == []
    seqs = [e.seq for e in store.list_events("shared")]
    writers = len(procs) + len(threads)
    assert seqs == list(range(writers * per_writer))  # unique, gapless, ordered
    per_writer_counts = Counter(e.body["iteration"] // 1000 for e in store.list_events("shared"))
    assert per_writer_counts == dict.fromkeys(range(writers), per_writer)
