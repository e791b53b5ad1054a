"""Cells as artifacts: the engine's sandbox runs each cell in its own ``rlm-executor``
process (real subprocesses, real Delta tables, the real local sandbox)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from artifact_support import factory_for, refuse, rows, started

from rlm_engine import RLM
from rlm_engine.errors import SandboxError
from rlm_engine.integrations.delta_lake import Lakehouse
from rlm_engine.jobs import markers
from rlm_engine.jobs.artifacts import ArtifactRegistry
from rlm_engine.lm.scripted import ScriptedModel
from rlm_engine.types import Message

DEADLINE_S = 60.0


def fence(code: str) -> str:
    return f"```repl\n{code}\n```"


def turn(messages: Sequence[Message]) -> int:
    return sum(1 for m in messages if m.role == "assistant")


@pytest.fixture
def registry(tmp_path: Path) -> ArtifactRegistry:
    return ArtifactRegistry(Lakehouse(tmp_path / "lake"))


def test_a_scripted_run_goes_through_executors(registry: ArtifactRegistry) -> None:
    turns = [
        fence("x = 21\nprint('x is set')"),
        fence("y = llm_query('double ' + str(x))\nprint(y)"),
        fence("FINAL(y)"),
    ]
    root = ScriptedModel(lambda messages: turns[min(turn(messages), len(turns) - 1)])
    sub = ScriptedModel(lambda messages: "42 (" + messages[-1].content + ")")
    factory = factory_for(registry)
    with RLM(root, sub, sandbox_factory=factory) as rlm:
        result = rlm.run("What is twice x?", "some context")
    assert result.stop_reason == "final"
    assert result.answer == "42 (double 21)"  # cell 2 read cell 1's x and called the sub-model
    assert result.sub_calls == 1
    stored = rows(registry)
    assert factory.spawns == len(stored) >= 3
    assert {a.status for a in stored} == {"completed"}
    assert {a.invocation_id for a in stored} == {"run-1"}
    assert [a.iteration for a in stored] == list(range(1, len(stored) + 1))
    by_code = {registry.path(a.code_artifact_key or "").read_text(): a for a in stored}
    second = by_code["y = llm_query('double ' + str(x))\nprint(y)"]
    assert second.consumed_time is not None and second.metadata["pid"] > 0
    folder = registry.dir_for(second.artifact_id)
    assert markers.parse((folder / "executor.log").read_text(), second.artifact_id) == (
        "42 (double 21)\n",
        "success",
    )
    assert '"cell_status": "ok"' in (folder / "result.json").read_text()
    assert registry.path(second.stdout_artifact_key or "").read_text() == "42 (double 21)\n"
    assert (folder / "namespace.in").exists() and (folder / "namespace.out").exists()
    assert (folder / "cell.ipynb").exists()


async def test_a_finished_artifact_is_not_run_again(registry: ArtifactRegistry) -> None:
    first = await started(factory_for(registry))
    ran = await first.execute("n = 6 * 7\nprint(n)", timeout_s=30)
    await first.close()
    assert ran.status == "ok" and ran.output == "42\n"
    # A resumed run: a new factory of the same run meets the same artifact id.
    again = factory_for(registry)
    sandbox = await started(again)
    replayed = await sandbox.execute("n = 6 * 7\nprint(n)", timeout_s=30)
    assert again.spawns == 0
    assert replayed == ran
    assert sandbox.last_artifact_id == first.last_artifact_id
    # Its namespace came with it: the next cell sees n.
    follow = await sandbox.execute("print(n + 1)", timeout_s=30)
    assert follow.output == "43\n" and again.spawns == 1
    assert await sandbox.list_vars() == {"n": "int"}
    await sandbox.close()


async def test_without_result_json_the_markers_in_the_log_are_read(
    registry: ArtifactRegistry,
) -> None:
    first = await started(factory_for(registry))
    await first.execute("print('from the log')", timeout_s=30)
    await first.close()
    folder = registry.dir_for(first.last_artifact_id or "")
    (folder / "result.json").unlink()
    again = factory_for(registry)
    sandbox = await started(again)
    result = await sandbox.execute("print('from the log')", timeout_s=30)
    assert (result.status, result.output) == ("ok", "from the log\n")
    await sandbox.close()
    # With the log gone too, the finished artifact is still not run again.
    (folder / "executor.log").unlink()
    third = factory_for(registry)
    sandbox = await started(third)
    lost = await sandbox.execute("print('from the log')", timeout_s=30)
    assert lost.status == "error" and lost.error is not None and "not run twice" in lost.error
    assert again.spawns == third.spawns == 0
    await sandbox.close()


async def test_a_cell_that_raises_is_an_error_with_its_traceback(
    registry: ArtifactRegistry,
) -> None:
    sandbox = await started(factory_for(registry))
    result = await sandbox.execute("a = 1\nprint('before')\n1 / 0", timeout_s=30)
    assert result.status == "error"
    assert result.output == "before\n"
    assert result.error is not None
    assert "Traceback" in result.error and "ZeroDivisionError" in result.error
    (stored,) = rows(registry)
    assert stored.status == "failed" and stored.metadata["cell_status"] == "error"
    log = (registry.dir_for(stored.artifact_id) / "executor.log").read_text()
    parsed = markers.parse(log, stored.artifact_id)
    assert parsed is not None and parsed[1] == "failed" and "ZeroDivisionError" in parsed[0]
    # Variables assigned before the error are kept, as in a local REPL.
    assert (await sandbox.execute("print(a)", timeout_s=30)).output == "1\n"
    await sandbox.close()


async def test_host_calls_and_their_errors_reach_the_orchestrators_handler(
    registry: ArtifactRegistry,
) -> None:
    seen: list[tuple[str, dict[str, Any]]] = []

    async def handler(method: str, params: Mapping[str, Any]) -> Any:
        seen.append((method, dict(params)))
        if method == "tool":
            return {"looked up": params["args"]}
        if method == "llm_query_batched":
            return [f"batch answer to {p}" for p in params["prompts"]]
        if "fail" in str(params.get("prompt")):
            raise ValueError("the budget says no")
        return f"answer to {params.get('prompt')}"

    sandbox = factory_for(registry)(handler, ("lookup",))
    await sandbox.start()
    await sandbox.load_context(None)
    code = (
        "print(lookup('k'))\n"
        "print(llm_query('one'))\n"
        "print(llm_query_batched(['two', 'three']))\n"
        "try:\n    llm_query('fail')\nexcept RuntimeError as exc:\n    print('raised:', exc)"
    )
    result = await sandbox.execute(code, timeout_s=30)
    await sandbox.close()
    assert result.status == "ok", result.error
    lines = result.output.splitlines()
    assert lines[0] == "{'looked up': ['k']}"
    assert lines[1] == "answer to one"
    assert lines[2] == "['batch answer to two', 'batch answer to three']"
    assert lines[3] == "raised: llm_query failed: ValueError: the budget says no"
    assert [m for m, _ in seen] == ["tool", "llm_query", "llm_query_batched", "llm_query"]


async def test_snapshot_and_restore_carry_variables_to_a_new_sandbox(
    registry: ArtifactRegistry,
) -> None:
    factory = factory_for(registry)
    first = await started(factory)
    code = (
        "import threading\nlock = threading.Lock()\ntotal = 40\ndef plus(n):\n    return total + n"
    )
    ran = await first.execute(code, timeout_s=30)
    assert "Not carried over to the next cell" in ran.output and "lock" in ran.output
    snapshot = await first.snapshot(max_bytes=1 << 20)
    assert snapshot.data is not None and snapshot.skipped == ("lock",)
    assert (await first.snapshot(max_bytes=1 << 20)).unchanged
    await first.close()
    second = await started(factory)  # a restart: another start key, then the restore
    await second.restore(snapshot.data)
    result = await second.execute("print(plus(2), 'lock' in globals())", timeout_s=30)
    assert result.output == "42 False\n"
    stored = registry.get(second.last_artifact_id or "")
    assert stored is not None and stored.metadata["parent"] == first.last_artifact_id
    await second.close()


async def test_an_executor_that_cannot_run_the_cell_is_a_sandbox_error(
    registry: ArtifactRegistry, tmp_path: Path
) -> None:
    data = tmp_path / "data.txt"
    data.write_text("numbers 1 2 3")
    factory = factory_for(registry)
    sandbox = factory(refuse, ())
    await sandbox.start()
    await sandbox.load_context(data)
    data.unlink()  # gone before the executor loads it
    with pytest.raises(SandboxError, match="data.txt"):
        await sandbox.execute("print(context)", timeout_s=30)
    first = sandbox.last_artifact_id
    stored = registry.get(first or "")
    assert stored is not None and stored.status == "pending"
    data.write_text("numbers 1 2 3")  # fixed: the same artifact runs
    result = await sandbox.execute("print(context)", timeout_s=30)
    assert result.output == "numbers 1 2 3\n"
    assert sandbox.last_artifact_id == first and factory.spawns == 2
    await sandbox.close()
