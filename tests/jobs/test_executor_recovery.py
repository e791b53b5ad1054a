"""An executor that dies, hangs, or outlives its orchestrator: the artifact's status and
the cell's result stay right, and a resumed run neither loses nor repeats a cell."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
from artifact_support import (
    DEADLINE_S,
    alive,
    executing_pid,
    executor_command,
    factory_for,
    pre_created,
    rows,
    started,
)

from rlm_engine import RLM
from rlm_engine.engine.journal_store import StoreJournal
from rlm_engine.engine.result import RunResult
from rlm_engine.errors import ProviderError
from rlm_engine.integrations.delta_lake import Lakehouse
from rlm_engine.jobs.artifact_sandbox import ArtifactSandboxFactory
from rlm_engine.jobs.artifacts import ArtifactRegistry
from rlm_engine.lm.scripted import ScriptedModel
from rlm_engine.store import NewRun, open_store
from rlm_engine.types import Message


@pytest.fixture
def registry(tmp_path: Path) -> ArtifactRegistry:
    return ArtifactRegistry(Lakehouse(tmp_path / "lake"))


async def test_a_killed_executor_is_a_killed_cell(registry: ArtifactRegistry) -> None:
    factory = factory_for(registry)
    sandbox = await started(factory)
    task = asyncio.create_task(sandbox.execute("import time\ntime.sleep(300)", timeout_s=120))
    pid = await executing_pid(registry)
    os.kill(pid, signal.SIGKILL)
    result = await task
    assert result.status == "killed"
    assert result.error is not None and "without a result" in result.error
    assert not sandbox.alive
    (stored,) = rows(registry)
    assert stored.status == "failed" and stored.metadata["cell_status"] == "killed"
    await sandbox.close()


async def test_an_executor_past_its_deadline_is_killed_as_a_group(
    registry: ArtifactRegistry, tmp_path: Path
) -> None:
    child_pid = tmp_path / "child.pid"
    hang = (
        "import subprocess, sys, time\n"
        f"p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'])\n"
        f"open({str(child_pid)!r}, 'w').write(str(p.pid))\n"
        "time.sleep(300)\n"
    )
    factory = factory_for(registry, executor_argv=[sys.executable, "-c", hang], startup_grace_s=2)
    sandbox = await started(factory)
    result = await sandbox.execute("print('never')", timeout_s=0.5)
    assert result.status == "killed"
    assert result.error is not None and "was killed" in result.error
    orphan = int(child_pid.read_text())
    assert not alive(orphan)  # the executor's whole group went
    await sandbox.close()


async def test_an_executing_artifact_with_a_live_executor_is_waited_for(
    registry: ArtifactRegistry,
) -> None:
    code = "import time\ntime.sleep(1)\nprint('done by the first executor')"
    created, sandbox_factory = await pre_created(registry, code)
    # The executor a crashed orchestrator started, still running.
    process = subprocess.Popen(
        executor_command(registry, created.artifact_id),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    )
    await executing_pid(registry)
    sandbox = await started(sandbox_factory)
    result = await sandbox.execute(code, timeout_s=30)
    assert process.wait(timeout=DEADLINE_S) == 0
    assert result.output == "done by the first executor\n"
    assert sandbox_factory.spawns == 0
    await sandbox.close()


async def test_an_executing_artifact_whose_executor_died_runs_again(
    registry: ArtifactRegistry,
) -> None:
    created, sandbox_factory = await pre_created(registry, "print('second try')")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    registry.mark(created.artifact_id, "executing", metadata={"pid": dead.pid, "host": "x"})
    sandbox = await started(sandbox_factory)
    result = await sandbox.execute("print('second try')", timeout_s=30)
    assert result.output == "second try\n" and sandbox_factory.spawns == 1
    stored = registry.get(created.artifact_id)
    assert stored is not None and stored.status == "completed"
    await sandbox.close()


async def test_an_executor_ends_with_its_killed_orchestrator_and_runs_again(
    registry: ArtifactRegistry, tmp_path: Path
) -> None:
    code = "import time\ntime.sleep(300)\nprint('slept')"
    created, sandbox_factory = await pre_created(registry, code)
    # A stand-in orchestrator that starts the executor as the sandbox does, then waits.
    argv = [*executor_command(registry, created.artifact_id), "--die-with-parent"]
    parent = subprocess.Popen(
        [sys.executable, "-c", f"import subprocess; subprocess.run({argv!r})"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    )
    pid = await executing_pid(registry)
    os.kill(parent.pid, signal.SIGKILL)  # kill -9 of the orchestrator
    parent.wait()
    loop = asyncio.get_running_loop()
    until = loop.time() + DEADLINE_S
    while alive(pid) and loop.time() < until:
        await asyncio.sleep(0.05)
    assert not alive(pid)
    stored = registry.get(created.artifact_id)
    assert stored is not None and stored.status == "executing"
    # The resumed orchestrator finds the executor dead and runs the artifact again.
    sandbox = await started(sandbox_factory)
    task = asyncio.create_task(sandbox.execute(code, timeout_s=120))
    rerun = await executing_pid(registry, other_than=pid)
    os.kill(rerun, signal.SIGKILL)
    assert (await task).status == "killed" and sandbox_factory.spawns == 1
    await sandbox.close()


def test_a_resumed_run_does_not_run_its_finished_artifacts_again(
    registry: ArtifactRegistry, tmp_path: Path
) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'rlm.db'}", tmp_path / "home")
    run_id = "resumed-run"
    store.create_run(NewRun(run_id=run_id, question="count"))
    cells = [
        "```repl\nitems = [3, 4, 5]\nprint(len(items))\n```",
        "```repl\nnote = llm_query('sum ' + str(sum(items)))\nprint(note)\n```",
        "```repl\nFINAL(note + ' after ' + str(items))\n```",
    ]

    def first_reply(messages: Sequence[Message]) -> str:
        turn = sum(m.role == "assistant" for m in messages)
        if turn >= 2:
            raise ProviderError("the provider is down", kind="server")
        return cells[turn]

    def resumed_reply(messages: Sequence[Message]) -> str:
        turn = sum(m.role == "assistant" for m in messages)
        assert turn == 2, "a journaled root turn was asked again"
        return cells[2]

    sub = ScriptedModel(lambda messages: "twelve")

    def run(root: ScriptedModel, factory: ArtifactSandboxFactory) -> RunResult:
        rlm = RLM(root, sub, sandbox_factory=factory)

        async def go() -> RunResult:
            try:
                return await rlm.arun(
                    "count", "ctx", run_id=run_id, journal=StoreJournal(store, run_id)
                )
            finally:
                await rlm.aclose()

        return asyncio.run(go())

    try:
        first_factory = factory_for(registry, run_id=run_id)
        first = run(ScriptedModel(first_reply), first_factory)
        assert first.stop_reason == "error"
        before = {a.artifact_id: a.status for a in rows(registry)}
        assert len(before) == first_factory.spawns and set(before.values()) == {"completed"}
        resumed_factory = factory_for(registry, run_id=run_id)
        resumed = run(ScriptedModel(resumed_reply), resumed_factory)
        assert resumed.stop_reason == "final", resumed.stop_detail
        assert resumed.answer == "twelve after [3, 4, 5]"
        assert resumed_factory.spawns == 1  # only the cell the first run never reached
        after = rows(registry)
        assert len(after) == len(before) + 1
        assert sub.calls and len(sub.calls) == 1  # the replayed sub-call came from the journal
    finally:
        store.close()
