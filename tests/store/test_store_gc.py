"""Garbage collection of blobs and pinned contexts, on SQLite and on the real Postgres."""

from __future__ import annotations

import os
import time
from pathlib import Path

from store_support import new_run

from rlm_engine.store import CellKey, CellStart, LocalBlobStore, ModelCall, NewRun, SqlStore
from rlm_engine.store.gc import collect_garbage
from rlm_engine.store.pinned_context import pin_context, restore_context

LONG = "y" * 5000  # over the test store's inline limit: kept as a blob


def age(store: SqlStore, seconds: float) -> None:
    """Make every stored blob look `seconds` old."""
    blobs = store.blobs
    assert isinstance(blobs, LocalBlobStore)
    past = time.time() - seconds
    for blob in blobs.list_blobs():
        os.utime(blobs.path(blob.ref), (past, past))


def journaled_run(store: SqlStore, run_id: str, context: Path) -> None:
    pinned = pin_context(store, [context])
    assert pinned is not None
    store.create_run(NewRun(run_id=run_id, question="q", context_hash=pinned.content_hash))
    store.record_model_call(
        ModelCall(
            run_id=run_id,
            node_id="t1",
            kind="root_turn",
            request_hash="h",
            request=LONG + run_id,
            response=LONG + "reply" + run_id,
        )
    )
    store.begin_cell(CellStart(run_id, "", 1, 0, "print(x)"))
    store.finish_cell(CellKey(run_id, "", 1, 0), status="completed", output=LONG + "out" + run_id)


def test_nothing_a_run_refers_to_is_collected(store: SqlStore, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx.txt"
    ctx.write_text(LONG)
    journaled_run(store, "kept", ctx)
    orphan = store.blobs.put(b"written by nothing")
    age(store, 7200)
    report = collect_garbage(store, grace_s=3600)
    assert (report.blobs_removed, report.contexts_removed) == (1, 0)
    assert not store.blobs.exists(orphan)
    # context file + manifest + request + response + cell output
    assert report.blobs_kept == 5
    tree = store.run_tree("kept")
    assert tree is not None and tree.cells[0].output == LONG + "outkept"
    ctx.unlink()
    [copy] = restore_context(store, tree.run.context_hash or "", tmp_path / "scratch")
    assert copy.read_text() == LONG


def test_a_deleted_run_leaves_nothing_behind_after_its_grace_period(
    store: SqlStore, tmp_path: Path
) -> None:
    shared = tmp_path / "shared.txt"
    shared.write_text(LONG)
    journaled_run(store, "gone", shared)
    journaled_run(store, "kept", shared)
    new_run(store, "plain")
    assert store.delete_run("gone")
    age(store, 7200)
    fresh = store.blobs.put(b"stored a moment ago by a run in flight")
    report = collect_garbage(store, grace_s=3600)
    # the deleted run's request, response and output go; the shared context stays
    assert report.blobs_removed == 3 and report.contexts_removed == 0
    assert store.blobs.exists(fresh)
    assert store.delete_run("kept")
    time.sleep(0.01)  # the context must be older than a zero grace period
    report = collect_garbage(store, grace_s=0)
    assert report.contexts_removed == 1
    assert report.blobs_kept == 0 and store.list_contexts() == []


def test_storing_an_existing_blob_again_restarts_its_grace_period(store: SqlStore) -> None:
    ref = store.blobs.put(b"reused")
    age(store, 7200)
    assert store.blobs.put(b"reused") == ref
    assert collect_garbage(store, grace_s=3600).blobs_removed == 0
    assert store.blobs.exists(ref)


def test_a_lost_manifest_does_not_stop_the_collection(store: SqlStore, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx.txt"
    ctx.write_text("pinned")
    pinned = pin_context(store, [ctx])
    assert pinned is not None and pinned.blob_ref is not None
    store.create_run(NewRun(run_id="r", question="q", context_hash=pinned.content_hash))
    store.blobs.delete(pinned.blob_ref)
    age(store, 7200)
    report = collect_garbage(store, grace_s=3600)
    assert report.blobs_removed == 1  # the file blob nothing can restore any more
