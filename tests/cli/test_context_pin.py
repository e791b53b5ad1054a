"""A run's context is pinned in the background: the run starts at once, its cells wait for
the copy, and a file that changes before it is copied fails the run clearly."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from rlm_engine.cli.progress import Progress
from rlm_engine.cli.run_driver import listeners, run_and_record
from rlm_engine.engine.journal_store import StoreJournal
from rlm_engine.engine.rlm import RLM
from rlm_engine.errors import ContextError
from rlm_engine.lm.scripted import ScriptedModel
from rlm_engine.service.contexts import run_context
from rlm_engine.service.event_sink import StoreEventSink
from rlm_engine.service.lifecycle import open_run
from rlm_engine.service.principal import Principal
from rlm_engine.service.spec import RunSpec
from rlm_engine.store.factory import open_store
from rlm_engine.store.pinned_context import BackgroundPin, ContextChangedError
from rlm_engine.store.records import NewRun
from rlm_engine.store.sql_store import SqlStore

READ_CONTEXT = "```repl\nprint(str(context[:5]))\n```"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    opened = open_store(None, tmp_path / "home")
    yield opened
    opened.close()


def run(store: SqlStore, ctx: Path, run_id: str, pin: BackgroundPin | None) -> str:
    root = ScriptedModel([READ_CONTEXT, "FINAL(done)"], name="scripted/root")
    sink = StoreEventSink(store)
    rlm = RLM(root, root, env={}, on_event=listeners(run_id, sink, Progress()))
    result = run_and_record(
        rlm,
        store,
        sink,
        Progress(),
        run_id=run_id,
        question="q",
        context=ctx,
        journal=StoreJournal(store, run_id),
        pin=pin,
    )
    return result.stop_reason


def test_the_run_is_recorded_under_the_pin_key_and_its_context_kept(
    store: SqlStore, tmp_path: Path
) -> None:
    ctx = tmp_path / "ctx.txt"
    ctx.write_text("hello world")
    spec = RunSpec(model="scripted/root", context=(str(ctx),))
    pin = open_run(store, "r1", "q", spec, who=Principal.local())
    assert pin is not None
    run_row = store.get_run("r1")
    assert run_row is not None and run_row.context_hash == pin.key  # known before the copy
    assert run(store, ctx, "r1", pin) == "final"
    ctx.write_text("changed after the run")
    finished = store.get_run("r1")
    assert finished is not None and finished.status == "completed"
    restored = run_context(store, finished, tmp_path / "scratch")
    assert isinstance(restored, Path) and restored.read_text() == "hello world"


def test_a_file_changed_before_its_copy_fails_the_run(store: SqlStore, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx.txt"
    ctx.write_text("hello world")
    run_settings = {"model": "scripted/root", "context": [str(ctx)]}
    pin = BackgroundPin(store, "r2", [ctx])  # the run starts and sees the file ...
    ctx.write_text("edited meanwhile")  # ... which changes before the copy starts
    store.create_run(NewRun(run_id="r2", question="q", settings=run_settings, context_hash=pin.key))
    with pytest.raises(ContextChangedError, match="ctx.txt"):
        run(store, ctx, "r2", pin.start())
    failed = store.get_run("r2")
    assert failed is not None and failed.status == "failed"
    assert failed.detail is not None and "changed while the run was pinning it" in failed.detail
    with pytest.raises(ContextError, match="stopped before its context was kept"):
        run_context(store, failed, tmp_path / "scratch")
